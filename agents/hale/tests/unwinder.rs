//! This package's programs carry GCC's unwinder (libgcc_eh.a, see build.rs) instead of loading
//! libgcc_s.so. The runner turns a panic into an exit reason only if a panic still unwinds;
//! this test binary is linked the same way as the agents, so it checks exactly that.

#[test]
fn a_panic_unwinds_to_catch_unwind() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let caught = std::panic::catch_unwind(|| -> u32 { panic!("deliberate") });
    std::panic::set_hook(hook);
    let payload = caught.expect_err("the panic must reach catch_unwind");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"deliberate"));
    // Unwinding ran the destructors of the frames it crossed.
    struct Flag<'a>(&'a std::cell::Cell<bool>);
    impl Drop for Flag<'_> {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = std::cell::Cell::new(false);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _flag = Flag(&dropped);
        std::panic::resume_unwind(Box::new(1u8));
    }));
    assert!(dropped.get(), "unwinding skipped a destructor");
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn libgcc_s_is_not_loaded() {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("reading /proc/self/maps");
    assert!(!maps.contains("libgcc_s"), "libgcc_s.so is mapped: build.rs did not link libgcc_eh.a");
}
