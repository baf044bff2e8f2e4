//! build.rs links some agent programs statically (its `STATIC_BINS`). A static glibc program
//! that asks NSS for a user, group or host loads the NSS modules nsswitch.conf lists, with a
//! second libc, and crashes (libnss_systemd on Debian 12 does). So a static program must
//! contain none of the NSS entry points, and vip, the agent whose monitor runs most often,
//! must stay static: its monitor then costs about what /bin/true costs.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::path::Path;
use std::process::Command;

/// The agent programs of this package, as cargo built them for this test.
const PROGRAMS: &[(&str, &str)] = &[
    ("hale-daemon", env!("CARGO_BIN_EXE_hale-daemon")),
    ("hale-vip", env!("CARGO_BIN_EXE_hale-vip")),
    ("hale-hostlock", env!("CARGO_BIN_EXE_hale-hostlock")),
    ("hale-gitscript", env!("CARGO_BIN_EXE_hale-gitscript")),
    ("hale-gitsync", env!("CARGO_BIN_EXE_hale-gitsync")),
];

/// glibc's functions that go through NSS (and so may load a module).
const NSS_ENTRIES: &[&str] = &[
    "getpwnam",
    "getpwnam_r",
    "getpwuid",
    "getpwuid_r",
    "getpwent",
    "getgrnam",
    "getgrnam_r",
    "getgrgid",
    "getgrgid_r",
    "getgrouplist",
    "initgroups",
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname_r",
    "gethostbyname2_r",
    "gethostbyaddr",
    "gethostbyaddr_r",
    "getnameinfo",
    "getservbyname",
    "getservbyname_r",
    "getspnam",
    "getspnam_r",
    "__nss_lookup_function",
];

/// Whether the ELF file at `path` asks for a program interpreter (PT_INTERP): a dynamic one.
fn dynamic(path: &Path) -> bool {
    let elf = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(
        elf.len() > 64 && &elf[..4] == b"\x7fELF" && elf[4] == 2 && elf[5] == 1,
        "{}: not a 64-bit LE ELF",
        path.display()
    );
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

/// The symbols `path` defines, read with binutils' nm.
fn defined_symbols(path: &Path) -> Vec<String> {
    let out = Command::new("nm")
        .args(["--defined-only", "--format=just-symbols"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("running nm (binutils) on {}: {e}", path.display()));
    assert!(out.status.success(), "nm {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn static_programs_never_ask_nss() {
    let mut statics = 0;
    for (name, path) in PROGRAMS {
        let path = Path::new(path);
        if dynamic(path) {
            continue;
        }
        statics += 1;
        let symbols = defined_symbols(path);
        let asked: Vec<&str> = NSS_ENTRIES.iter().copied().filter(|e| symbols.iter().any(|s| s == e)).collect();
        assert!(
            asked.is_empty(),
            "{name} is linked statically but contains {asked:?}: a lookup would load NSS modules into a \
             static program; take it out of STATIC_BINS in agents/hale/build.rs"
        );
    }
    assert!(statics > 0, "no agent program is static");
}

#[test]
fn vip_is_static() {
    let (_, path) = PROGRAMS.iter().find(|(n, _)| *n == "hale-vip").unwrap();
    assert!(
        !dynamic(Path::new(path)),
        "hale-vip asks for a program interpreter: build.rs did not link it statically (is libc6-dev's libc.a missing?)"
    );
}

#[test]
fn the_agents_that_look_up_names_stay_dynamic() {
    // daemon and gitscript run their service as a user; a static one would crash on a user
    // that only an NSS module (sssd, LDAP, systemd) knows.
    for name in ["hale-daemon", "hale-gitscript"] {
        let (_, path) = PROGRAMS.iter().find(|(n, _)| *n == name).unwrap();
        assert!(dynamic(Path::new(path)), "{name} is static but looks up users through NSS");
    }
}
