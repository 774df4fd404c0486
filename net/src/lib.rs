//! paf's network layer: everything below the byte stream.
//!
//! Layers, bottom up:
//!
//! - [`device`]: where Ethernet frames come from and go to — a Linux TAP ([`device::Tap`]) or an
//!   in-memory [`device::wire`] that joins two stacks inside one process (with seeded faults), both
//!   optionally captured to a pcap file. One [`device::Device`] type wraps them for smoltcp.
//! - [`stack`]: a smoltcp `Interface` and `SocketSet` with addresses from a typed [`Config`]
//!   (static or DHCPv4), listener pools (smoltcp has no accept backlog), outgoing connections with
//!   collision-free ephemeral ports.
//! - [`transport`]: the contract the layers above program against — connections as byte pipes with
//!   readiness, identified by [`ConnId`]. [`Stack`] implements it on smoltcp; [`kernel::KernelStack`]
//!   implements it on kernel sockets (mio), so the same HTTP/TLS code runs on either.
//!
//! - [`dns`]: name resolution (A and AAAA) through the same contract, over smoltcp's DNS socket
//!   or, on the twin, kernel UDP sockets.
//! - [`alloc`]: the allocator a program on this stack may set (the `paf` binary does): mimalloc
//!   for small blocks, the C library's for socket buffers.
//!
//! Nothing here reads the clock: every call that needs time takes `now`.
//! Nothing here knows HTTP or TLS.

pub mod alloc;
pub mod clock;
pub mod config;
pub mod device;
pub mod dns;
pub mod kernel;
pub mod stack;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transport;

pub use config::{Config, Ipv4Setting, Ipv6Setting, Offload, TcpConfig};
pub use dns::{DnsError, QueryId, RecordType};
pub use stack::{Stack, HALF_OPEN_TIMEOUT};
pub use transport::{
    ConnId, ConnectError, Event, ListenError, ListenerId, Readiness, RecvError, SendError,
    Transport,
};

/// Ask the allocator (glibc) to serve allocations of `threshold` bytes and more with fresh
/// anonymous mappings, whose pages are zero and cost no memory until touched. TCP socket buffers
/// are allocated zeroed; with this, a connection costs only the buffer pages its traffic has
/// touched. Process-wide; returns whether the allocator accepted it. Call it early (the binary
/// does). Finished sockets are recycled by the stack, so this adds no system call per connection
/// in steady state.
pub fn lazy_buffer_memory(threshold: usize) -> bool {
    let Ok(t) = libc::c_int::try_from(threshold) else {
        return false;
    };
    // SAFETY: mallopt only changes allocator tuning parameters; it is safe to call at any time.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, t) == 1 }
}

/// Sends `signal` to the process `pid` (`kill(2)`; `paf reload` sends `SIGHUP` to a running
/// `paf run`). Signal 0 sends nothing and only checks that the process exists and may be
/// signalled. Here because `net` is the one crate of paf with `unsafe` (as
/// [`lazy_buffer_memory`]).
///
/// # Errors
/// The OS's: `ESRCH` when no such process exists, `EPERM` when it may not be signalled;
/// `InvalidInput` for a pid that is not a single positive process id.
pub fn signal_process(pid: u32, signal: i32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a positive pid
    // names one process, never a group.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The CPUs this process may run on (its affinity mask, `sched_getaffinity(2)`), in order.
///
/// # Errors
/// The OS's.
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes at most size_of::<cpu_set_t>() bytes into the set we own.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads the set we own, at an index below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Pins the calling thread to CPU `cpu` (`sched_setaffinity(2)` on the thread).
///
/// # Errors
/// The OS's: `EINVAL` for a CPU the process may not use.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes the set we own, at an index below CPU_SETSIZE (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the kernel reads the set we own.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Re-export of the smoltcp version paf is built on, for users who need its wire types.
pub use smoltcp;
