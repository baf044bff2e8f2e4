//! `ocf:hale:gitscript` as a program of its own: it links only the gitscript agent's code, so a monitor
//! or meta-data run loads and maps nothing of the other agents (see the `hale` package's
//! README section in packaging/README.md). `hale install` installs it as
//! `<OCF_ROOT>/resource.d/hale/gitscript`.

fn main() {
    hale_ocf::runner::main(&hale_gitscript::GitScript::new(hale_backend::processes()), hale_backend::syslog());
}
