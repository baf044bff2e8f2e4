//! `ocf:hale:gitsync` as a program of its own: it links only the gitsync agent's code, so a monitor
//! or meta-data run loads and maps nothing of the other agents (see the `hale` package's
//! README section in packaging/README.md). `hale install` installs it as
//! `<OCF_ROOT>/resource.d/hale/gitsync`.

fn main() {
    hale_ocf::runner::main(&hale_gitsync::GitSync::new(hale_backend::processes()), hale_backend::syslog());
}
