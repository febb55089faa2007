//! The environment variables netns-test reads.

/// The runner's private variables, from the parent to the child process. They carry a leading
/// double underscore; the user-facing variables are documented in the crate docs.
pub(crate) mod internal {
    /// The key (exact test name, or sandbox call site) the child runs.
    pub(crate) const CHILD: &str = "__NETNS_TEST_CHILD";
    /// `status,release,stdout` descriptor numbers.
    pub(crate) const FDS: &str = "__NETNS_TEST_FDS";
    /// All of them, to clear from programs started in nodes.
    pub(crate) const ALL: [&str; 2] = [CHILD, FDS];
}
