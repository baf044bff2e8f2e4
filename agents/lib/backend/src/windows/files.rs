//! Files only SYSTEM and Administrators may read: the per-resource configuration of the WSFC
//! adapter holds every agent parameter, secrets included.
//!
//! The directory gets a *protected* DACL (inheritance from the parent cut, so a permissive
//! `C:\ProgramData` ACL does not leak in) granting full control to SYSTEM and the
//! Administrators group only, inherited by files created in it: a file written there is
//! private from its first byte. Each file also gets the same DACL explicitly, in case it was
//! created before the directory was locked down.

use super::wide;
use std::path::Path;
use windows_sys::Win32::Foundation::LocalFree;
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetFileSecurityW, GetSecurityDescriptorControl, SetFileSecurityW, DACL_SECURITY_INFORMATION,
    PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, SE_DACL_PROTECTED,
};

/// SYSTEM and Administrators, full control, protected; inherited by files and subdirectories.
pub const PRIVATE_DIR_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";
/// The same for one file.
pub const PRIVATE_FILE_SDDL: &str = "D:P(A;;FA;;;SY)(A;;FA;;;BA)";

fn set_sddl(path: &Path, sddl: &str) -> std::io::Result<()> {
    let text = wide(sddl);
    let p = wide(path);
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: the strings live across the calls; the descriptor is freed with LocalFree.
    unsafe {
        if ConvertStringSecurityDescriptorToSecurityDescriptorW(
            text.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        ) == 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let ok = SetFileSecurityW(p.as_ptr(), DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, sd);
        let err = std::io::Error::last_os_error();
        LocalFree(sd as _);
        if ok == 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// Lock `dir` down to SYSTEM and Administrators (creating it if needed).
pub fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    set_sddl(dir, PRIVATE_DIR_SDDL)
}

/// Lock one file down to SYSTEM and Administrators.
pub fn make_private_file(file: &Path) -> std::io::Result<()> {
    set_sddl(file, PRIVATE_FILE_SDDL)
}

/// The DACL of `path` in SDDL (`D:P(A;;FA;;;SY)...`), for diagnostics and tests.
pub fn dacl_sddl(path: &Path) -> std::io::Result<String> {
    use windows_sys::Win32::Security::Authorization::ConvertSecurityDescriptorToStringSecurityDescriptorW;
    let p = wide(path);
    let mut needed = 0u32;
    // SAFETY: a size query, then a buffer of that size; the string is freed with LocalFree.
    unsafe {
        GetFileSecurityW(p.as_ptr(), DACL_SECURITY_INFORMATION, std::ptr::null_mut(), 0, &mut needed);
        if needed == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut buf = vec![0u64; (needed as usize).div_ceil(8)];
        if GetFileSecurityW(p.as_ptr(), DACL_SECURITY_INFORMATION, buf.as_mut_ptr().cast(), needed, &mut needed) == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut out: windows_sys::core::PWSTR = std::ptr::null_mut();
        if ConvertSecurityDescriptorToStringSecurityDescriptorW(
            buf.as_mut_ptr().cast(),
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut out,
            std::ptr::null_mut(),
        ) == 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let len = (0..).take_while(|&i| *out.add(i) != 0).count();
        let s = String::from_utf16_lossy(std::slice::from_raw_parts(out, len));
        LocalFree(out as _);
        Ok(s)
    }
}

/// `sddl` parsed by Windows and written back: proves the string is a well-formed descriptor
/// and shows it as Windows understands it.
pub fn normalize_sddl(sddl: &str) -> std::io::Result<String> {
    use windows_sys::Win32::Security::Authorization::ConvertSecurityDescriptorToStringSecurityDescriptorW;
    let text = wide(sddl);
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: the string lives across the calls; both allocations are freed with LocalFree.
    unsafe {
        if ConvertStringSecurityDescriptorToSecurityDescriptorW(
            text.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        ) == 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let (mut control, mut rev) = (0u16, 0u32);
        let protected =
            GetSecurityDescriptorControl(sd, &mut control, &mut rev) != 0 && control & SE_DACL_PROTECTED != 0;
        let mut out: windows_sys::core::PWSTR = std::ptr::null_mut();
        let ok = ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut out,
            std::ptr::null_mut(),
        );
        LocalFree(sd as _);
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let len = (0..).take_while(|&i| *out.add(i) != 0).count();
        let s = String::from_utf16_lossy(std::slice::from_raw_parts(out, len));
        LocalFree(out as _);
        if !protected {
            return Err(std::io::Error::other(format!("{s}: the DACL is not protected")));
        }
        Ok(s)
    }
}
