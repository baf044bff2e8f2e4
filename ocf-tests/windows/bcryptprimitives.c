/* TEST-ONLY shim, never shipped: Wine 8.0 (Debian 12) has no bcryptprimitives.dll, but Rust std
 * >= 1.78 imports ProcessPrng from it (rust-lang/rust#121337), so every test exe dies at load time
 * (rc=53, no output). cross-test.sh compiles this into the Wine prefix's system32 only.
 * Real Windows (10 / Server 2016 and later) has the genuine DLL. */
#include <windows.h>

/* RtlGenRandom, exported by advapi32 under this name. */
__declspec(dllimport) BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* SystemFunction036 takes a ULONG length; loop so SIZE_T-sized requests still work. */
    while (len) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
