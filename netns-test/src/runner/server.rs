//! The fork server: a `fork` per test instead of an `exec` of the test binary per test.
//!
//! The first test constructor of a process of the test binary
//! ([`crate::__private::run_child_early`], before `main`, while the process is single-threaded)
//! forks the server (see [`super::served::start_early`]). The fork stays in that constructor
//! for good: it is single-threaded for its whole life and may `fork` freely, and every
//! `#[netns_test]` has registered itself by then ([`Registration`], in a constructor of higher
//! priority), so the server knows every test body by name. It needs no `exec`, no dynamic
//! loader and no constructors of its own.
//!
//! The parent and the server talk over one `SOCK_SEQPACKET` socket. A request carries the test
//! name, the mode, the parent's working directory and environment, and five descriptors: a
//! socket of the test's own and the four channels of the direct path (the report pipe, the
//! release pipe, standard output and standard error). For each request the server forks; the
//! forked child takes the same steps as the direct path's `pre_exec` ([`super::fork`]: process
//! group, death signal, namespaces, the PID namespace's supervisor and init) and then, as PID
//! 2, takes the parent's environment and directory and runs the test function, exactly where
//! the direct path's child would after `exec`.
//!
//! On the test's socket the server sends the supervisor's PID (`P`) and, once it has reaped
//! it, its wait status (`S`); the forked child sends `R` once it runs as the test process, or
//! `E` and an errno when a step failed (the step's marker is on the report pipe, as in the
//! direct path); the server answers `N` for a name it does not know. The parent sends `K` and
//! a signal number for a timeout's signals, which the server sends to the test's process group
//! while it has not reaped it (so a PID reused after the reap is never signalled). When the
//! parent closes the test's socket before the test exited, the server kills the test's group,
//! as the direct path's death signal would when the parent's thread ends; when the parent
//! closes the server's socket (it exited or was killed), the server kills every test's group
//! and exits. The server itself dies with the parent's main thread, which forked it and runs
//! the harness until the process exits.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicPtr, Ordering};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use super::fork::PreExec;

/// The most a request may be: the environment travels in it, and a `SOCK_SEQPACKET` message
/// must fit the socket's buffer. A bigger environment takes the direct path.
pub(super) const REQUEST_LIMIT: usize = 128 * 1024;

/// The descriptors of a request, in this order.
pub(super) const REQUEST_FDS: usize = 5;

/// A `#[netns_test]` function, registered by the constructor the attribute puts in
/// `.init_array.60000`: the loader runs those before the unprioritised constructors, so when
/// the first test's [`crate::__private::run_child_early`] runs, every test of the binary is in
/// the list.
pub struct Registration {
    module_path: &'static str,
    function: &'static str,
    test: fn(),
    next: AtomicPtr<Registration>,
}

/// The registered tests, newest first.
static REGISTERED: AtomicPtr<Registration> = AtomicPtr::new(std::ptr::null_mut());

impl Registration {
    /// The entry of `test`, the function `function` of module `module_path`.
    pub const fn new(module_path: &'static str, function: &'static str, test: fn()) -> Self {
        Registration { module_path, function, test, next: AtomicPtr::new(std::ptr::null_mut()) }
    }

    /// Adds this entry to the list (constructors run one after the other, before `main`; the
    /// compare-exchange keeps the list sound whatever calls it).
    pub fn register(&'static self) {
        let this = std::ptr::from_ref(self).cast_mut();
        let mut head = REGISTERED.load(Ordering::Acquire);
        loop {
            self.next.store(head, Ordering::Relaxed);
            match REGISTERED.compare_exchange_weak(head, this, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }
}

/// Every registered test by its libtest name, built once when the server starts: a request
/// then costs one lookup, not a name made for each of the binary's tests.
fn registry() -> HashMap<Vec<u8>, fn()> {
    let mut tests = HashMap::new();
    let mut entry = REGISTERED.load(Ordering::Acquire);
    // SAFETY: the list holds only `&'static Registration`s.
    while let Some(registration) = unsafe { entry.as_ref() } {
        let name = super::naming::test_name(registration.module_path, registration.function);
        tests.insert(name.into_bytes(), registration.test);
        entry = registration.next.load(Ordering::Acquire);
    }
    tests
}

/// Whether the harness may run a registered test with these arguments (the program's own
/// left out): libtest runs a test when no filter is given or a filter matches its name (the
/// whole name with `--exact`, a part of it otherwise). Anything not an option counts as a
/// filter, an option's value included, which can only make this say yes more often.
pub(crate) fn may_run_a_test(args: &[OsString]) -> bool {
    let exact = args.iter().any(|arg| arg == "--exact");
    let filters: Vec<&[u8]> =
        args.iter().map(|arg| arg.as_encoded_bytes()).filter(|arg| !arg.starts_with(b"-")).collect();
    if filters.is_empty() {
        return true;
    }
    let mut entry = REGISTERED.load(Ordering::Acquire);
    // SAFETY: the list holds only `&'static Registration`s.
    while let Some(registration) = unsafe { entry.as_ref() } {
        let matched = if exact {
            filters.iter().any(|filter| {
                super::naming::is_test_name(filter, registration.module_path, registration.function)
            })
        } else {
            let name = super::naming::test_name(registration.module_path, registration.function);
            filters.iter().any(|filter| name.as_bytes().windows(filter.len()).any(|window| window == *filter))
        };
        if matched {
            return true;
        }
        entry = registration.next.load(Ordering::Acquire);
    }
    false
}

/// What the parent asks for: one test, in a mode, with the parent's directory and environment.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Request {
    pub(super) key: OsString,
    pub(super) rootless: bool,
    pub(super) cwd: OsString,
    pub(super) env: Vec<(OsString, OsString)>,
}

impl Request {
    /// `R`, the mode, then each text as a 4-byte length and its bytes.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = vec![b'R', u8::from(self.rootless)];
        let mut text = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        text(self.key.as_bytes());
        text(self.cwd.as_bytes());
        for (name, value) in &self.env {
            text(name.as_bytes());
            text(value.as_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Request> {
        let (&[b'R', rootless], mut rest) = bytes.split_first_chunk::<2>()? else { return None };
        let mut texts = Vec::new();
        while !rest.is_empty() {
            let (length, tail) = rest.split_first_chunk::<4>()?;
            let length = u32::from_le_bytes(*length) as usize;
            texts.push(OsString::from_vec(tail.get(..length)?.to_vec()));
            rest = &tail[length..];
        }
        // The key, the directory, then pairs of name and value.
        if texts.len() < 2 || texts.len() % 2 != 0 {
            return None;
        }
        let mut texts = texts.into_iter();
        let (key, cwd) = (texts.next()?, texts.next()?);
        let mut env = Vec::new();
        while let (Some(name), Some(value)) = (texts.next(), texts.next()) {
            env.push((name, value));
        }
        Some(Request { key, rootless: rootless == 1, cwd, env })
    }
}

/// A test the server started and has not reaped yet.
struct Running {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    /// The test's socket to the parent, until the parent closes it.
    socket: Option<OwnedFd>,
}

/// Sends one message on a test's socket; a parent that has gone is no error of the server's.
pub(super) fn tell(socket: RawFd, message: &[u8]) {
    // SAFETY: send(2) from a buffer we own; MSG_NOSIGNAL: a closed peer is EPIPE, no signal.
    unsafe {
        libc::send(socket, message.as_ptr().cast(), message.len(), libc::MSG_NOSIGNAL);
    }
}

/// The server's name in `ps` (`comm`); its forks take back the test binary's.
pub(crate) const NAME: &std::ffi::CStr = c"netns-test-srv";

/// The server's socket to the parent, once moved there.
const CONTROL: RawFd = 3;

/// Runs the server in the fork of `parent` made before `main`, on `control`, its socket to
/// the parent. Never returns.
pub(crate) fn serve_forked(control: OwnedFd, parent: libc::pid_t) -> ! {
    let mut name = [0u8; 16];
    // SAFETY: raw system calls in a single-threaded process, on buffers on the stack. The
    // server dies with the parent's main thread (the one running the constructors, which runs
    // the harness until the process exits), and checks that the parent did not die first. It
    // keeps none of the parent's descriptors but its socket: standard streams held by an idle
    // server would keep a reader of the parent's output (cargo, nextest) waiting.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 || libc::getppid() != parent {
            libc::_exit(0);
        }
        libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr());
        libc::prctl(libc::PR_SET_NAME, NAME.as_ptr());
        // A parent gone is EPIPE on a send, not a signal; the tests inherit this, as the
        // direct path's children ignore SIGPIPE too (`run_child_early`).
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if libc::dup3(control.as_raw_fd(), CONTROL, libc::O_CLOEXEC) != CONTROL {
            libc::_exit(0);
        }
        std::mem::forget(control);
        libc::syscall(libc::SYS_close_range, (CONTROL + 1) as u32, u32::MAX, 0u32);
    }
    serve(CONTROL, name)
}

/// The server's loop on `control`; `name` is the test binary's `comm`, for the tests.
fn serve(control: RawFd, name: [u8; 16]) -> ! {
    // The server watches its tests with pidfds: without them (kernels before 5.3) it does not
    // serve, and the parent takes the direct path once its socket is closed.
    // SAFETY: getpid(2) takes no arguments.
    let own = super::fork::pidfd_open(unsafe { libc::getpid() });
    if own < 0 {
        std::process::exit(0);
    }
    // SAFETY: a fresh descriptor.
    drop(unsafe { OwnedFd::from_raw_fd(own) });
    let tests = registry();
    let mut running: Vec<Running> = Vec::new();
    let mut buffer = vec![0u8; REQUEST_LIMIT];
    loop {
        let mut fds = vec![libc::pollfd { fd: control, events: libc::POLLIN, revents: 0 }];
        for test in &running {
            fds.push(libc::pollfd { fd: test.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            let socket = test.socket.as_ref().map_or(-1, AsRawFd::as_raw_fd);
            fds.push(libc::pollfd { fd: socket, events: libc::POLLIN, revents: 0 });
        }
        // SAFETY: poll(2) on a vector of pollfds we own.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            continue;
        }
        let mut reaped = Vec::new();
        for (slot, test) in running.iter_mut().enumerate() {
            if fds[1 + 2 * slot].revents != 0 {
                let mut status: libc::c_int = 0;
                // SAFETY: waitpid(2) on our own child, into a local.
                if unsafe { libc::waitpid(test.pid, &mut status, libc::WNOHANG) } == test.pid {
                    if let Some(socket) = &test.socket {
                        let mut message = vec![b'S'];
                        message.extend_from_slice(&status.to_ne_bytes());
                        tell(socket.as_raw_fd(), &message);
                    }
                    reaped.push(slot);
                    continue;
                }
            }
            if fds[2 + 2 * slot].revents != 0 {
                order(test);
            }
        }
        for slot in reaped.into_iter().rev() {
            running.swap_remove(slot);
        }
        if fds[0].revents != 0 {
            match receive(control, &mut buffer) {
                Received::Request(request, channels) => {
                    if let Some(test) = start(&tests, request, channels, control, name) {
                        running.push(test);
                    }
                }
                Received::Nothing => {}
                Received::Closed => {
                    // The parent has gone: nothing of its tests may stay.
                    for test in &running {
                        kill(test.pid);
                    }
                    std::process::exit(0);
                }
            }
        }
    }
}

/// Takes what the parent sent on `test`'s socket: a signal for its group (`K` and the
/// signal), or the end of the socket, after which the test must not run on.
fn order(test: &mut Running) {
    let Some(socket) = &test.socket else { return };
    let mut message = [0u8; 2];
    // SAFETY: recv(2) into a buffer on the stack.
    let read = unsafe { libc::recv(socket.as_raw_fd(), message.as_mut_ptr().cast(), 2, libc::MSG_DONTWAIT) };
    match read {
        2 if message[0] == b'K' => {
            // SAFETY: kill(2) of our own, not yet reaped, child's process group.
            unsafe {
                libc::killpg(test.pid, libc::c_int::from(message[1]));
            }
        }
        n if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) => {}
        n if n <= 0 => {
            kill(test.pid);
            test.socket = None;
        }
        _ => {}
    }
}

/// Kills the test whose supervisor is `pid`: its process group, and the supervisor itself in
/// case it has not made its group yet (its init and test die with it, by their death signal).
fn kill(pid: libc::pid_t) {
    // SAFETY: kill(2) of our own, not yet reaped, child and its group.
    unsafe {
        libc::killpg(pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

/// What one receive on the server's socket gave.
enum Received {
    Request(Request, [OwnedFd; REQUEST_FDS]),
    Nothing,
    Closed,
}

fn receive(control: RawFd, buffer: &mut [u8]) -> Received {
    let mut space = nix::cmsg_space!([RawFd; REQUEST_FDS]);
    let mut iov = [IoSliceMut::new(buffer)];
    let (length, fds) = match recvmsg::<()>(control, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
        Ok(message) => {
            let mut fds = Vec::new();
            if let Ok(cmsgs) = message.cmsgs() {
                for cmsg in cmsgs {
                    if let ControlMessageOwned::ScmRights(received) = cmsg {
                        // SAFETY: descriptors the kernel just installed for this process.
                        fds.extend(received.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                    }
                }
            }
            (message.bytes, fds)
        }
        Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => return Received::Nothing,
        Err(_) => return Received::Closed,
    };
    if length == 0 && fds.is_empty() {
        return Received::Closed;
    }
    let Ok(channels) = <[OwnedFd; REQUEST_FDS]>::try_from(fds) else { return Received::Nothing };
    match Request::decode(&buffer[..length]) {
        Some(request) => Received::Request(request, channels),
        // Without the test's socket answered, the parent would wait: `N` sends it direct.
        None => {
            tell(channels[0].as_raw_fd(), b"N");
            Received::Nothing
        }
    }
}

/// Forks the test of `request`; `None` when there is nothing to watch (an unknown test, a
/// failed fork: the parent has been told).
fn start(
    tests: &HashMap<Vec<u8>, fn()>,
    request: Request,
    channels: [OwnedFd; REQUEST_FDS],
    control: RawFd,
    name: [u8; 16],
) -> Option<Running> {
    let Some(&test) = tests.get(request.key.as_bytes()) else {
        tell(channels[0].as_raw_fd(), b"N");
        return None;
    };
    // SAFETY: getpid(2) takes no arguments.
    let server = unsafe { libc::getpid() };
    // SAFETY: this process is single-threaded (it never left the constructor that runs it),
    // so the child may do anything the server could.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        run_test(request, channels, control, server, test, name);
    }
    let socket = channels.into_iter().next().expect("five descriptors");
    if pid < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EAGAIN);
        let mut message = vec![b'E'];
        message.extend_from_slice(&errno.to_ne_bytes());
        tell(socket.as_raw_fd(), &message);
        return None;
    }
    let mut message = vec![b'P'];
    message.extend_from_slice(&pid.to_ne_bytes());
    tell(socket.as_raw_fd(), &message);
    let pidfd = super::fork::pidfd_open(pid);
    if pidfd < 0 {
        // pidfd_open of our own unreaped child fails only for lack of descriptors, and then
        // the test cannot be watched: it is killed (its init and test die with it), and the
        // parent fails it with that errno.
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EMFILE);
        // SAFETY: kill(2) and waitpid(2) of our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        let mut message = vec![b'E'];
        message.extend_from_slice(&errno.to_ne_bytes());
        tell(socket.as_raw_fd(), &message);
        return None;
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Some(Running { pid, pidfd, socket: Some(socket) })
}

/// The descriptor numbers the test process has its channels on, as the direct path passes
/// them in `__NETNS_TEST_FDS`: report, release, standard output; then the test's socket.
const STATUS: RawFd = 3;
const RELEASE: RawFd = 4;
const STDOUT: RawFd = 5;
const SOCKET: RawFd = 6;

/// In the forked child: the direct path's `pre_exec` steps, then the test. Never returns.
fn run_test(
    request: Request,
    channels: [OwnedFd; REQUEST_FDS],
    control: RawFd,
    server: i32,
    test: fn(),
    comm: [u8; 16],
) -> ! {
    let [socket, status, release, stdout, stderr] = channels.map(|fd| {
        let raw = fd.as_raw_fd();
        std::mem::forget(fd);
        raw
    });
    // SAFETY: this process is a single-threaded copy of the server; the calls move the
    // channels to fixed numbers (through copies above them, so that none overwrites another)
    // and close everything else, the server's socket and other tests' descriptors included.
    unsafe {
        libc::close(control);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        let high = [socket, status, release, stdout, stderr, null]
            .map(|fd| libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64));
        if high.contains(&-1) {
            libc::_exit(127);
        }
        let [socket, status, release, stdout, stderr, null] = high;
        // Standard output goes to /dev/null until the child's run takes the output pipe, as
        // after the direct path's `exec`.
        for (from, to) in
            [(null, 0), (null, 1), (stderr, 2), (status, STATUS), (release, RELEASE), (stdout, STDOUT)]
        {
            libc::dup2(from, to);
        }
        libc::dup2(socket, SOCKET);
        libc::fcntl(SOCKET, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::syscall(libc::SYS_close_range, (SOCKET + 1) as u32, u32::MAX, 0u32);
    }
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let mode = if request.rootless { super::Mode::Rootless } else { super::Mode::Root };
    let flags = super::spawn::unshare_flags(mode);
    let maps =
        request.rootless.then(|| (format!("0 {uid} 1\n").into_bytes(), format!("0 {gid} 1\n").into_bytes()));
    let pre_exec =
        PreExec { parent: server, report_fd: STATUS, inherit: [STATUS, RELEASE, STDOUT], flags, maps };
    if let Err(error) = pre_exec.run() {
        let errno = error.raw_os_error().unwrap_or(libc::EIO);
        let mut message = vec![b'E'];
        message.extend_from_slice(&errno.to_ne_bytes());
        tell(SOCKET, &message);
        // SAFETY: _exit(2) ends this copy without running the server's exit handlers twice.
        unsafe { libc::_exit(127) };
    }
    // The test process, PID 2 of its namespace: the test binary's name, the parent's
    // environment and directory, and the runner's marker and descriptors, as the direct
    // path's `exec` would give it.
    // SAFETY: prctl(2) with a NUL-terminated buffer of 16 bytes (PR_GET_NAME filled it).
    unsafe {
        libc::prctl(libc::PR_SET_NAME, comm.as_ptr());
    }
    let name = request.key.to_string_lossy().into_owned();
    // SAFETY: the process is single-threaded; nothing reads the environment meanwhile.
    unsafe {
        crate::settings::internal::replace_environment(&request.env);
        std::env::set_var(crate::settings::internal::CHILD, &request.key);
        std::env::set_var(crate::settings::internal::FDS, format!("{STATUS},{RELEASE},{STDOUT}"));
    }
    if std::env::set_current_dir(&request.cwd).is_err() {
        // The direct path's child starts in the parent's directory; a test must not run
        // elsewhere without a word.
        eprintln!("netns-test: cannot enter the test's working directory {:?}", request.cwd);
        // SAFETY: as above.
        unsafe { libc::_exit(127) };
    }
    tell(SOCKET, b"R");
    // SAFETY: closing our own copy of the test's socket.
    unsafe {
        libc::close(SOCKET);
    }
    super::naming::run_on_test_thread(name, test)
}

/// Sends a request with its descriptors on the server's socket.
pub(super) fn send(control: RawFd, request: &[u8], fds: &[RawFd; REQUEST_FDS]) -> nix::Result<usize> {
    let rights = [ControlMessage::ScmRights(fds)];
    sendmsg::<()>(control, &[IoSlice::new(request)], &rights, MsgFlags::MSG_NOSIGNAL, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_decodes_to_itself() {
        let request = Request {
            key: "paths::an_added_link".into(),
            rootless: true,
            cwd: "/work/x".into(),
            env: vec![("A".into(), "".into()), ("NETNS_TEST_TRACE".into(), "1".into())],
        };
        assert_eq!(Request::decode(&request.encode()), Some(request));
    }

    #[test]
    fn only_arguments_that_select_no_test_leave_the_server_out() {
        static REGISTERED_HERE: Registration = Registration::new("crate::runner", "served_here", || {});
        REGISTERED_HERE.register();
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(may_run_a_test(&args(&[])));
        assert!(may_run_a_test(&args(&["--test-threads=2", "-q"])));
        assert!(may_run_a_test(&args(&["served_h"])));
        assert!(may_run_a_test(&args(&["--exact", "runner::served_here"])));
        assert!(!may_run_a_test(&args(&["--exact", "runner::served_her"])));
        assert!(!may_run_a_test(&args(&["--exact", "served_here"])));
        assert!(!may_run_a_test(&args(&["no_such_test_anywhere"])));
    }

    #[test]
    fn a_truncated_request_is_refused() {
        let request = Request { key: "t".into(), rootless: false, cwd: "/".into(), env: vec![] };
        let bytes = request.encode();
        assert_eq!(Request::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Request::decode(b"X\0"), None);
    }
}
