fn main() {
    // Link the binary at a fixed address (not position-independent): the dynamic loader then
    // has no relocations to apply at every start. A PIE of this size carries ~18,000 of them,
    // which cost each agent run about 150 page faults before main. The objects stay PIC, so
    // this changes nothing but the final link; only this package's binaries get it.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
