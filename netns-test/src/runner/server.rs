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
//! group, death signal, namespaces, the PID namespace's init, and its supervisor unless the
//! server made the PID namespace itself: [`Forker`]) and then, as PID
//! 2, takes the parent's environment and directory and runs the test function, exactly where
//! the direct path's child would after `exec`.
//!
//! For tests on the default topology the server keeps spares ([`Spares`]): children forked
//! before any test asks, that have entered fresh namespaces and built the default topology's
//! network, and wait on a socket of their own. A request for such a test hands the oldest spare
//! its key and the five descriptors instead of forking; a new spare is forked at once. A spare
//! serves one test; its namespaces are never reused.
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
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicPtr, Ordering};

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, sendmsg,
    socketpair,
};

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
    /// The test runs on the default topology (no `topology` or `topology_file` option), which
    /// a spare process may have built ahead.
    default_topology: bool,
    next: AtomicPtr<Registration>,
}

/// The registered tests, newest first.
static REGISTERED: AtomicPtr<Registration> = AtomicPtr::new(std::ptr::null_mut());

impl Registration {
    /// The entry of `test`, the function `function` of module `module_path`, on the default
    /// topology or not.
    pub const fn new(
        module_path: &'static str,
        function: &'static str,
        test: fn(),
        default_topology: bool,
    ) -> Self {
        Registration {
            module_path,
            function,
            test,
            default_topology,
            next: AtomicPtr::new(std::ptr::null_mut()),
        }
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

/// The registered tests, newest first.
fn registrations() -> impl Iterator<Item = &'static Registration> {
    let mut entry = REGISTERED.load(Ordering::Acquire);
    std::iter::from_fn(move || {
        // SAFETY: the list holds only `&'static Registration`s.
        let registration: &'static Registration = unsafe { entry.as_ref() }?;
        entry = registration.next.load(Ordering::Acquire);
        Some(registration)
    })
}

/// A registered test as the server keeps it.
#[derive(Clone, Copy)]
struct Entry {
    test: fn(),
    default_topology: bool,
}

/// Every registered test by its libtest name, built at the server's first request (after
/// its first spare is forked, which it would delay): a request then costs one lookup, not a
/// name made for each of the binary's tests.
#[derive(Default)]
struct Registry(std::cell::OnceCell<HashMap<Vec<u8>, Entry>>);

impl Registry {
    fn get(&self, key: &[u8]) -> Option<Entry> {
        let map = self.0.get_or_init(|| {
            registrations()
                .map(|registration| {
                    let name = super::naming::test_name(registration.module_path, registration.function);
                    (name.into_bytes(), Entry::of(registration))
                })
                .collect()
        });
        map.get(key).copied()
    }
}

impl Entry {
    fn of(registration: &Registration) -> Entry {
        Entry { test: registration.test, default_topology: registration.default_topology }
    }

    /// The registered test named `key`, found without building the map: a spare looks up
    /// only its own test.
    fn find(key: &[u8]) -> Option<Entry> {
        registrations()
            .find(|registration| {
                super::naming::is_test_name(key, registration.module_path, registration.function)
            })
            .map(Entry::of)
    }
}

/// The registered tests that the harness may run with these arguments (the program's own left
/// out): libtest runs a test when no filter is given or a filter matches its name (the whole
/// name with `--exact`, a part of it otherwise). Anything not an option counts as a filter, an
/// option's value included (`--skip`'s too), and ignored tests count: this can only select
/// more tests than the harness runs.
fn selected(args: &[OsString]) -> impl Iterator<Item = &'static Registration> + '_ {
    let exact = args.iter().any(|arg| arg == "--exact");
    let filters: Vec<&[u8]> =
        args.iter().map(|arg| arg.as_encoded_bytes()).filter(|arg| !arg.starts_with(b"-")).collect();
    registrations().filter(move |registration| {
        if filters.is_empty() {
            true
        } else if exact {
            filters.iter().any(|filter| {
                super::naming::is_test_name(filter, registration.module_path, registration.function)
            })
        } else {
            let name = super::naming::test_name(registration.module_path, registration.function);
            filters.iter().any(|filter| name.as_bytes().windows(filter.len()).any(|window| window == *filter))
        }
    })
}

/// Whether the harness may run a registered test with these arguments (see [`selected`]).
pub(crate) fn may_run_a_test(args: &[OsString]) -> bool {
    selected(args).next().is_some()
}

/// How many of the tests these arguments select are on the default topology: how many spare
/// processes with a network built ahead the server may use (see [`Spares`]).
pub(crate) fn default_topology_tests(args: &[OsString]) -> usize {
    selected(args).filter(|registration| registration.default_topology).count()
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
    /// Where the init reports the test's wait status when the server's child is the init
    /// itself ([`Forker`]); `None`: the child is a supervisor that exits as the test did.
    status: Option<OwnedFd>,
}

impl Running {
    /// The wait status to send the parent, once the server's child has been reaped with
    /// `waited`: the supervisor's own, or what the init reported (an init killed before it
    /// could report was killed with everything in its namespace: SIGKILL).
    fn test_status(&self, waited: libc::c_int) -> libc::c_int {
        let Some(pipe) = &self.status else { return waited };
        let mut bytes = [0u8; 4];
        // SAFETY: read(2) into a buffer on the stack, from our own non-blocking pipe.
        let read = unsafe { libc::read(pipe.as_raw_fd(), bytes.as_mut_ptr().cast(), bytes.len()) };
        if read == bytes.len() as isize { libc::c_int::from_ne_bytes(bytes) } else { libc::SIGKILL }
    }
}

/// How the server forks a test's process. In root mode its child is the init (PID 1) of a
/// PID namespace that the server makes for it (`setns` back to the server's own, then
/// `unshare(CLONE_NEWPID)`, which only moves the server's next child): one fork fewer than a
/// child that makes its own PID namespace and must stay outside it as a supervisor. The init
/// reports the test's wait status to the server on a pipe. Rootless, the PID namespace must
/// belong to the test's own user namespace, which only the child can make: it keeps the
/// supervisor ([`super::fork::PreExec::run`]).
struct Forker {
    /// The server's own PID namespace; `None` where it cannot be opened (then every child
    /// makes its own, as rootless).
    pidns: Option<OwnedFd>,
    /// Cleared the first time the server may not make a PID namespace for a child (a root of
    /// a user namespace may not `setns` into its own PID namespace): it does not try again.
    may_make: std::cell::Cell<bool>,
    /// A pidfd of the server: a child in another PID namespace sees 0 as its parent's PID, so
    /// it checks the server with this descriptor instead.
    own: OwnedFd,
}

/// What a child made by [`Forker::fork`] is: the init of the PID namespace the server made
/// (with the write end of its status pipe and the server's pidfd), or `None`: a plain fork.
#[derive(Clone, Copy)]
struct AsInit {
    status: RawFd,
    server: RawFd,
}

/// The two sides of [`Forker::fork`].
enum Fork {
    /// In the server: the child, and the read end of its init's status pipe.
    Parent(libc::pid_t, Option<OwnedFd>),
    Child(Option<AsInit>),
}

impl Forker {
    fn fork(&self, rootless: bool) -> std::io::Result<Fork> {
        let pipe = match &self.pidns {
            Some(pidns) if !rootless && self.may_make.get() => {
                let pipe = Self::new_pid_namespace(pidns.as_raw_fd());
                self.may_make.set(pipe.is_some());
                pipe
            }
            _ => None,
        };
        // SAFETY: this process is single-threaded (it never left the constructor that runs
        // it), so the child may do anything the server could.
        let pid = unsafe { libc::fork() };
        let error = std::io::Error::last_os_error();
        if pid != 0 {
            if let Some(pidns) = &self.pidns {
                // SAFETY: setns(2) back into our own PID namespace, for later children.
                unsafe { libc::setns(pidns.as_raw_fd(), libc::CLONE_NEWPID) };
            }
        }
        match pid {
            0 => Ok(Fork::Child(pipe.map(|(read, write)| {
                drop(read);
                AsInit { status: write.into_raw_fd(), server: self.own.as_raw_fd() }
            }))),
            pid if pid > 0 => Ok(Fork::Parent(pid, pipe.map(|(read, _write)| read))),
            _ => Err(error),
        }
    }

    /// A pipe for the init's report, once the server's next child will be the init of a new
    /// PID namespace; `None` when that cannot be made (the child then makes its own).
    fn new_pid_namespace(pidns: RawFd) -> Option<(OwnedFd, OwnedFd)> {
        use nix::fcntl::OFlag;
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ok()?;
        // SAFETY: fcntl(2), setns(2) and unshare(2) on descriptors we own; a failure leaves
        // the next child in the server's own PID namespace.
        unsafe {
            libc::fcntl(read.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
            if libc::setns(pidns, libc::CLONE_NEWPID) != 0 || libc::unshare(libc::CLONE_NEWPID) != 0 {
                return None;
            }
        }
        Some((read, write))
    }
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
pub(crate) fn serve_forked(control: OwnedFd, parent: libc::pid_t, ahead: usize) -> ! {
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
    serve(CONTROL, name, ahead)
}

/// The server's loop on `control`; `name` is the test binary's `comm`, for the tests; `ahead`
/// how many tests on the default topology the harness's arguments select.
fn serve(control: RawFd, name: [u8; 16], ahead: usize) -> ! {
    // The server watches its tests with pidfds: without them (kernels before 5.3) it does not
    // serve, and the parent takes the direct path once its socket is closed.
    // SAFETY: getpid(2) takes no arguments.
    let own = super::fork::pidfd_open(unsafe { libc::getpid() });
    if own < 0 {
        std::process::exit(0);
    }
    // SAFETY: a fresh descriptor.
    let own = unsafe { OwnedFd::from_raw_fd(own) };
    // SAFETY: open(2) of a NUL-terminated path.
    let pidns = unsafe { libc::open(c"/proc/self/ns/pid".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: a fresh descriptor, when there is one.
    let pidns = (pidns >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidns) });
    let forker = Forker { pidns, may_make: std::cell::Cell::new(true), own };
    let tests = Registry::default();
    let mut running: Vec<Running> = Vec::new();
    let mut spares = Spares::new(ahead);
    let mut buffer = vec![0u8; REQUEST_LIMIT];
    loop {
        spares.refill(&forker, control, name);
        // The server's socket, each spare, then each test and its socket.
        let mut fds = vec![libc::pollfd { fd: control, events: libc::POLLIN, revents: 0 }];
        for spare in &spares.ready {
            fds.push(libc::pollfd { fd: spare.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        let first_test = fds.len();
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
            if fds[first_test + 2 * slot].revents != 0 {
                let mut status: libc::c_int = 0;
                // SAFETY: waitpid(2) on our own child, into a local.
                if unsafe { libc::waitpid(test.pid, &mut status, libc::WNOHANG) } == test.pid {
                    if let Some(socket) = &test.socket {
                        let mut message = vec![b'S'];
                        message.extend_from_slice(&test.test_status(status).to_ne_bytes());
                        tell(socket.as_raw_fd(), &message);
                    }
                    reaped.push(slot);
                    continue;
                }
            }
            if fds[first_test + 1 + 2 * slot].revents != 0 {
                order(test);
            }
        }
        for slot in reaped.into_iter().rev() {
            running.swap_remove(slot);
        }
        for slot in (0..first_test - 1).rev() {
            if fds[1 + slot].revents != 0 {
                spares.died(slot);
            }
        }
        if fds[0].revents != 0 {
            match receive(control, &mut buffer) {
                Received::Request(request, channels) => {
                    let started = match tests.get(request.key.as_bytes()) {
                        Some(entry) if entry.default_topology => {
                            match spares.hand(&request, channels, &mut running) {
                                Ok(test) => Some(test),
                                Err(channels) => start(&forker, &tests, request, channels, control, name),
                            }
                        }
                        _ => start(&forker, &tests, request, channels, control, name),
                    };
                    running.extend(started);
                }
                Received::Nothing => {}
                Received::Closed => {
                    // The parent has gone: nothing of its tests may stay.
                    for test in &running {
                        kill(test.pid);
                    }
                    for spare in &spares.ready {
                        kill(spare.pid);
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

/// Kills the test whose supervisor (or init) is `pid`: its process group, and that process in
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

/// One message on `socket` into `buffer`: its length and the descriptors it carried (at most
/// [`REQUEST_FDS`]), installed close-on-exec.
fn receive_with_descriptors(socket: RawFd, buffer: &mut [u8]) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; REQUEST_FDS]);
    let mut iov = [IoSliceMut::new(buffer)];
    let message = recvmsg::<()>(socket, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            // SAFETY: descriptors the kernel just installed for this process.
            fds.extend(received.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok((message.bytes, fds))
}

/// Tells the parent, on a test's socket, that starting its child failed with `errno`.
fn tell_errno(socket: RawFd, errno: i32) {
    let mut message = vec![b'E'];
    message.extend_from_slice(&errno.to_ne_bytes());
    tell(socket, &message);
}

fn receive(control: RawFd, buffer: &mut [u8]) -> Received {
    let (length, fds) = match receive_with_descriptors(control, buffer) {
        Ok(received) => received,
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
    forker: &Forker,
    tests: &Registry,
    request: Request,
    channels: [OwnedFd; REQUEST_FDS],
    control: RawFd,
    name: [u8; 16],
) -> Option<Running> {
    let Some(Entry { test, .. }) = tests.get(request.key.as_bytes()) else {
        tell(channels[0].as_raw_fd(), b"N");
        return None;
    };
    // SAFETY: getpid(2) takes no arguments.
    let server = unsafe { libc::getpid() };
    let (pid, status) = match forker.fork(request.rootless) {
        Ok(Fork::Child(as_init)) => run_test(request, channels, control, server, as_init, test, name),
        Ok(Fork::Parent(pid, status)) => (pid, status),
        Err(error) => {
            let socket = channels.into_iter().next().expect("five descriptors");
            let errno = error.raw_os_error().unwrap_or(libc::EAGAIN);
            tell_errno(socket.as_raw_fd(), errno);
            return None;
        }
    };
    let socket = channels.into_iter().next().expect("five descriptors");
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
        tell_errno(socket.as_raw_fd(), errno);
        return None;
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Some(Running { pid, pidfd, socket: Some(socket), status })
}

/// The descriptor numbers the test process has its channels on, as the direct path passes
/// them in `__NETNS_TEST_FDS`: report, release, standard output; then the test's socket.
const STATUS: RawFd = 3;
const RELEASE: RawFd = 4;
const STDOUT: RawFd = 5;
const SOCKET: RawFd = 6;
/// In a child that is the init of the PID namespace the server made ([`AsInit`]): the write
/// end of the init's status pipe, and the server's pidfd (the same numbers, unused, otherwise).
const INIT_STATUS: RawFd = 7;
const SERVER_PIDFD: RawFd = 8;

/// In the forked child: the direct path's `pre_exec` steps, then the test. Never returns.
fn run_test(
    request: Request,
    channels: [OwnedFd; REQUEST_FDS],
    control: RawFd,
    server: i32,
    as_init: Option<AsInit>,
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
        let (init_status, server_pidfd) = as_init.map_or((null, null), |init| (init.status, init.server));
        let high = [socket, status, release, stdout, stderr, null, init_status, server_pidfd]
            .map(|fd| libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64));
        if high.contains(&-1) {
            libc::_exit(127);
        }
        let [socket, status, release, stdout, stderr, null, init_status, server_pidfd] = high;
        libc::dup3(init_status, INIT_STATUS, libc::O_CLOEXEC);
        libc::dup3(server_pidfd, SERVER_PIDFD, libc::O_CLOEXEC);
        // Standard output goes to /dev/null until the child's run takes the output pipe, as
        // after the direct path's `exec`.
        for (from, to) in
            [(null, 0), (null, 1), (stderr, 2), (status, STATUS), (release, RELEASE), (stdout, STDOUT)]
        {
            libc::dup2(from, to);
        }
        libc::dup2(socket, SOCKET);
        libc::fcntl(SOCKET, libc::F_SETFD, libc::FD_CLOEXEC);
        let first_unused = if as_init.is_some() { SERVER_PIDFD + 1 } else { INIT_STATUS };
        libc::syscall(libc::SYS_close_range, first_unused as u32, u32::MAX, 0u32);
    }
    let as_init = as_init.map(|_| AsInit { status: INIT_STATUS, server: SERVER_PIDFD });
    if let Err(error) = enter_namespaces(request.rootless, server, STATUS, [STATUS, RELEASE, STDOUT], as_init)
    {
        let errno = error.raw_os_error().unwrap_or(libc::EIO);
        tell_errno(SOCKET, errno);
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

/// The direct path's `pre_exec` steps (see [`PreExec`]) in a fork of the server: its own
/// process group, the death signal, the namespaces of `rootless` or root mode, and the PID
/// namespace's supervisor and init; this process goes on as PID 2. A failing step's marker
/// goes to `report_fd`; `inherit` lose close-on-exec, as for an `exec`.
fn enter_namespaces(
    rootless: bool,
    server: libc::pid_t,
    report_fd: RawFd,
    inherit: [RawFd; 3],
    as_init: Option<AsInit>,
) -> std::io::Result<()> {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let mode = if rootless { super::Mode::Rootless } else { super::Mode::Root };
    let flags = super::spawn::unshare_flags(mode);
    let maps = rootless.then(|| (format!("0 {uid} 1\n").into_bytes(), format!("0 {gid} 1\n").into_bytes()));
    let pre_exec = PreExec { parent: server, report_fd, inherit, flags, maps };
    match as_init {
        Some(init) => pre_exec.run_as_init(init.status, init.server),
        None => pre_exec.run(),
    }
}

/// A spare test process: forked by the server before any test asks for it, it enters fresh
/// namespaces and builds the default topology ([`super::child::build_ahead`]), then waits on
/// its socket for the test that claims it. A test on the default topology then costs the
/// server a message, not a fork and a build, and the build overlaps whatever the harness and
/// the previous test were doing. Its namespaces are as fresh as a fork's: made for this one
/// test, never used by another.
struct Spare {
    /// The spare's supervisor or init, the server's child.
    pid: libc::pid_t,
    pidfd: OwnedFd,
    /// The server's end of the spare's socket.
    claim: OwnedFd,
    /// The read end of its init's status pipe (see [`Running::status`]).
    status: Option<OwnedFd>,
}

/// The server's spare, and how many more it may build.
struct Spares {
    /// How many more tests on the default topology the harness may ask for: no spare is built
    /// beyond them, so that a process that runs one such test (nextest's) builds one network.
    /// Filters the server cannot read exactly (`--skip`, ignored tests) make it count more
    /// than run: the process then ends with spares built for nothing (killed with it).
    left: usize,
    /// The mode the spares are built in (`None`: no spares, see
    /// [`crate::settings::internal::building_ahead_mode`]).
    rootless: Option<bool>,
    /// The spares waiting for their tests, oldest first: as many as the process may use CPUs, so
    /// that tests run one after the other have the next network built on another CPU, and
    /// tests run in parallel find one each.
    ready: std::collections::VecDeque<Spare>,
    /// How many spares may wait at once.
    depth: usize,
    /// The server's environment, sorted, and directory: the spare's settings were read from
    /// them, so it is handed only to a request that has the same ones.
    env: Vec<(OsString, OsString)>,
    cwd: OsString,
}

/// How many CPUs this process may run on (its affinity, as `nproc` says). Not
/// `std::thread::available_parallelism`, which also reads the cgroup's CPU quota (three files
/// and a few hundred microseconds), paid here before the first spare is forked.
fn cpus() -> usize {
    // SAFETY: sched_getaffinity(2) into a zeroed set on the stack, of the size given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            libc::CPU_COUNT(&set) as usize
        } else {
            1
        }
    }
}

impl Spares {
    fn new(left: usize) -> Spares {
        let rootless =
            crate::settings::internal::building_ahead_mode().map(|mode| mode == super::Mode::Rootless);
        let mut env = crate::settings::internal::environment();
        env.sort();
        let cwd = std::env::current_dir().map(std::path::PathBuf::into_os_string).unwrap_or_default();
        let left = if rootless.is_some() && !cwd.is_empty() { left } else { 0 };
        let depth = cpus().clamp(1, 4);
        Spares { left, rootless, ready: Default::default(), depth, env, cwd }
    }

    /// Forks spares until [`Spares::depth`] wait, or as many as tests may still want.
    fn refill(&mut self, forker: &Forker, control: RawFd, comm: [u8; 16]) {
        while self.ready.len() < self.depth.min(self.left) && self.rootless.is_some() {
            self.fork(forker, control, comm);
        }
    }

    /// Forks one spare; on failure, builds no more.
    fn fork(&mut self, forker: &Forker, control: RawFd, comm: [u8; 16]) {
        let Some(rootless) = self.rootless else { return };
        let Ok((ours, theirs)) =
            socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        else {
            self.left = 0;
            return;
        };
        // SAFETY: getpid(2) takes no arguments.
        let server = unsafe { libc::getpid() };
        let (pid, status) = match forker.fork(rootless) {
            Ok(Fork::Child(as_init)) => {
                drop(ours);
                run_spare(theirs, control, server, rootless, as_init, comm);
            }
            Ok(Fork::Parent(pid, status)) => (pid, status),
            Err(_) => (-1, None),
        };
        drop(theirs);
        let pidfd = if pid > 0 { super::fork::pidfd_open(pid) } else { -1 };
        if pidfd < 0 {
            if pid > 0 {
                kill(pid);
                // SAFETY: waitpid(2) of our own child.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            }
            self.left = 0;
            return;
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        self.ready.push_back(Spare { pid, pidfd, claim: ours, status });
    }

    /// Spare `slot` died before a test claimed it (killed from outside: a spare that cannot
    /// make its namespaces waits to report that to its test): it is reaped, and no other is
    /// built; tests take a fork of their own.
    fn died(&mut self, slot: usize) {
        if let Some(spare) = self.ready.remove(slot) {
            // SAFETY: waitpid(2) of our own child, which has exited.
            unsafe { libc::waitpid(spare.pid, std::ptr::null_mut(), 0) };
        }
        self.left = 0;
    }

    /// Hands the oldest waiting spare to the test of `request` (on the default topology), or
    /// gives the channels back when there is none or it does not fit the request (another mode, another
    /// environment or directory: then it is killed, and no other is built).
    fn hand(
        &mut self,
        request: &Request,
        channels: [OwnedFd; REQUEST_FDS],
        running: &mut Vec<Running>,
    ) -> Result<Running, [OwnedFd; REQUEST_FDS]> {
        self.left = self.left.saturating_sub(1);
        let Some(spare) = self.ready.pop_front() else { return Err(channels) };
        let fits = self.rootless == Some(request.rootless) && request.cwd == self.cwd && {
            let mut env = request.env.clone();
            env.sort();
            env == self.env
        };
        let fds = channels.each_ref().map(AsRawFd::as_raw_fd);
        if !fits || send(spare.claim.as_raw_fd(), request.key.as_bytes(), &fds).is_err() {
            kill(spare.pid);
            running.push(Running { pid: spare.pid, pidfd: spare.pidfd, socket: None, status: spare.status });
            self.left = 0;
            return Err(channels);
        }
        let [socket, ..] = channels;
        let mut message = vec![b'P'];
        message.extend_from_slice(&spare.pid.to_ne_bytes());
        tell(socket.as_raw_fd(), &message);
        Ok(Running { pid: spare.pid, pidfd: spare.pidfd, socket: Some(socket), status: spare.status })
    }
}

/// The descriptors of a spare process: its socket to the server, and the file that keeps what
/// it writes on standard error before its test claims it (the test's own standard error is not
/// known yet), which it then copies there.
const SPARE_SOCKET: RawFd = 3;
const SPARE_ERRORS: RawFd = 4;
/// As [`INIT_STATUS`] and [`SERVER_PIDFD`], for a spare.
const SPARE_INIT_STATUS: RawFd = 5;
const SPARE_SERVER_PIDFD: RawFd = 6;

/// In the forked spare: the namespaces, the default topology's network, then the wait for the
/// test that claims it, which it runs as the forked child of a request would. Never returns.
fn run_spare(
    claim: OwnedFd,
    control: RawFd,
    server: libc::pid_t,
    rootless: bool,
    as_init: Option<AsInit>,
    comm: [u8; 16],
) -> ! {
    // SAFETY: a single-threaded copy of the server: the calls move the socket and a new
    // memory file to fixed numbers (through copies above them) and close everything else.
    unsafe {
        libc::close(control);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        let errors = libc::memfd_create(c"netns-test-spare-stderr".as_ptr(), libc::MFD_CLOEXEC);
        let (init_status, server_pidfd) = as_init.map_or((null, null), |init| (init.status, init.server));
        let high = [claim.as_raw_fd(), errors, null, init_status, server_pidfd]
            .map(|fd| libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64));
        if high.contains(&-1) {
            libc::_exit(127);
        }
        let [claim_high, errors_high, null_high, init_status, server_pidfd] = high;
        libc::dup3(init_status, SPARE_INIT_STATUS, libc::O_CLOEXEC);
        libc::dup3(server_pidfd, SPARE_SERVER_PIDFD, libc::O_CLOEXEC);
        for (from, to) in [(null_high, 0), (null_high, 1), (errors_high, 2)] {
            libc::dup2(from, to);
        }
        libc::dup3(claim_high, SPARE_SOCKET, libc::O_CLOEXEC);
        libc::dup3(errors_high, SPARE_ERRORS, libc::O_CLOEXEC);
        std::mem::forget(claim);
        let first_unused = if as_init.is_some() { SPARE_SERVER_PIDFD + 1 } else { SPARE_INIT_STATUS };
        libc::syscall(libc::SYS_close_range, first_unused as u32, u32::MAX, 0u32);
    }
    let as_init = as_init.map(|_| AsInit { status: SPARE_INIT_STATUS, server: SPARE_SERVER_PIDFD });
    // A failing step's marker is kept in a pipe of the spare's own until its test claims it,
    // and then reported as a fork of the request would: the marker on the test's report pipe,
    // the errno on its socket.
    let mut markers = [0 as libc::c_int; 2];
    // SAFETY: pipe2(2) into an array on the stack.
    if unsafe { libc::pipe2(markers.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        // SAFETY: _exit(2) ends this copy without running the server's exit handlers.
        unsafe { libc::_exit(127) };
    }
    let entered = enter_namespaces(rootless, server, markers[1], [0, 1, 2], as_init);
    let mut key = vec![0u8; 64 * 1024];
    if let Err(error) = entered {
        let mut marker = [0u8; 2];
        // SAFETY: read(2) into a buffer on the stack, from our own pipe.
        let marked = unsafe { libc::read(markers[0], marker.as_mut_ptr().cast(), marker.len()) } == 2;
        let Some((_, [socket, status, ..])) = receive_claim(&mut key) else { std::process::exit(0) };
        if marked {
            // SAFETY: write(2) of a buffer on the stack to the test's report pipe.
            unsafe { libc::write(status.as_raw_fd(), marker.as_ptr().cast(), marker.len()) };
        }
        let errno = error.raw_os_error().unwrap_or(libc::EIO);
        tell_errno(socket.as_raw_fd(), errno);
        // SAFETY: as above.
        unsafe { libc::_exit(127) };
    }
    // SAFETY: closing our own pipe, and prctl(2) with a NUL-terminated buffer of 16 bytes
    // (PR_GET_NAME filled it).
    unsafe {
        libc::close(markers[0]);
        libc::close(markers[1]);
        libc::prctl(libc::PR_SET_NAME, comm.as_ptr());
    }
    super::child::build_ahead();
    let Some((length, [socket, status, release, stdout, stderr])) = receive_claim(&mut key) else {
        // The server has gone, or killed this spare for a request it did not fit.
        std::process::exit(0);
    };
    key.truncate(length);
    // SAFETY: dup2(2) onto standard error (whatever a thread writes goes to one or the other),
    // then the spare's own errors copied after it with pread/write from a buffer we own.
    unsafe {
        libc::dup2(stderr.as_raw_fd(), libc::STDERR_FILENO);
        let mut buffer = [0u8; 4096];
        let mut offset = 0;
        loop {
            let read = libc::pread(SPARE_ERRORS, buffer.as_mut_ptr().cast(), buffer.len(), offset);
            if read <= 0 {
                break;
            }
            libc::write(libc::STDERR_FILENO, buffer.as_ptr().cast(), read as usize);
            offset += read as libc::off_t;
        }
        libc::close(SPARE_ERRORS);
    }
    drop(stderr);
    let Some(entry) = Entry::find(&key) else { std::process::exit(127) };
    let key = OsString::from_vec(key);
    let name = key.to_string_lossy().into_owned();
    let fds = [status, release, stdout].map(|fd| {
        let raw = fd.as_raw_fd();
        std::mem::forget(fd);
        raw
    });
    crate::settings::internal::claimed_as_child(key, fds);
    tell(socket.as_raw_fd(), b"R");
    drop(socket);
    super::naming::run_on_test_thread(name, entry.test)
}

/// The key and descriptors of the test that claims this spare (socket, report, release,
/// standard output, standard error), or `None` when the server closed the socket.
fn receive_claim(buffer: &mut [u8]) -> Option<(usize, [OwnedFd; REQUEST_FDS])> {
    loop {
        match receive_with_descriptors(SPARE_SOCKET, buffer) {
            Ok((length, fds)) => {
                return <[OwnedFd; REQUEST_FDS]>::try_from(fds).ok().map(|fds| (length, fds));
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return None,
        }
    }
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
        static REGISTERED_HERE: Registration = Registration::new("crate::runner", "served_here", || {}, true);
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
