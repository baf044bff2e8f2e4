//! `ocf:hale:gitsync` as a program of its own: it links only the gitsync agent's code, so a monitor
//! or meta-data run loads and maps nothing of the other agents (see the `hale` package's
//! README section in packaging/README.md). `hale install` installs it as
//! `<OCF_ROOT>/resource.d/hale/gitsync`.
//!
//! Its `main` is the C one (`agent_main!`), without the standard library's start-up: see
//! `hale_backend::agent_main`.

#![cfg_attr(not(test), no_main)]

hale_backend::agent_main!(hale_ocf::runner::main(
    &hale_gitsync::GitSync::new(hale_backend::processes()),
    hale_backend::syslog()
));
