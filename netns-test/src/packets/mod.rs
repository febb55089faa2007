//! Packets under the test's control: per-packet hooks on links the user-space engine carries
//! ([`Hook`], [`Verdict`], [`HookContext`], [`HookGuard`]) and the view of a frame they see
//! ([`Frame`], built on `pnet_packet`, re-exported as [`pnet`]).
//!
//! A hook is a closure that decides each frame entering one direction of a link, before the
//! link's conditions: pass it, drop it, delay it, duplicate it, or replace its bytes.
//!
//! ```no_run
//! use netns_test::packets::{Frame, Hook, HookContext, Verdict};
//! # fn body(net: &netns_test::Network) -> netns_test::Result<()> {
//! let link = net.link("client", "server");
//! // Drop the 3rd and the 5th UDP datagram from client to server.
//! let udp = |f: &Frame<'_>| f.udp().is_some();
//! let drops = link.hook_from("client", Hook::drop_nth_matching([3, 5], "UDP", udp))?;
//! // Or any closure: delay every TCP SYN by 50 ms.
//! let syn = link.hook_from("server", |frame: &Frame<'_>, _: &mut HookContext| {
//!     if frame.is_tcp_syn() { Verdict::Delay(std::time::Duration::from_millis(50)) } else { Verdict::Pass }
//! })?;
//! # drop((drops, syn)); Ok(()) }
//! ```
//!
//! Hooks run on the engine's thread, on the frame's bytes where they lie (a frame that passes
//! is not copied). While a direction has a hook, GSO superframes are cut into their wire
//! packets first, so the hook sees, counts and indexes what a wire would carry. A hook that
//! panics is removed at once (the frame and those after it pass), and the test fails with the
//! hook's message and location.

pub(crate) mod capture;
mod frame;
mod hook;

pub use capture::{Capture, CapturedFrame, DEFAULT_CAPTURE_BYTES};

pub use frame::Frame;
pub(crate) use hook::HookState;
pub use hook::{Hook, HookContext, HookCounts, HookGuard, Verdict};
/// The `pnet_packet` crate the frame views come from, for naming their types
/// (`pnet::tcp::TcpFlags`, `pnet::Packet` for `payload()`).
pub use pnet_packet as pnet;
