//! Tests by name: libtest's name of a `#[netns_test]` function, recognised without being
//! made, and the thread a test runs on, named as the harness names it.

/// libtest's name for a test: the module path without the crate name, then the function.
pub fn test_name(module_path: &str, function: &str) -> String {
    match module_path.split_once("::") {
        Some((_, rest)) => format!("{rest}::{function}"),
        None => function.to_string(),
    }
}

/// Whether `name` is [`test_name`]`(module_path, function)`, without allocating.
pub(crate) fn is_test_name(name: &[u8], module_path: &str, function: &str) -> bool {
    let rest = match module_path.split_once("::") {
        Some((_, rest)) => name.strip_prefix(rest.as_bytes()).and_then(|rest| rest.strip_prefix(b"::")),
        None => Some(name),
    };
    rest == Some(function.as_bytes())
}

/// Runs `test` (which exits the process) on a thread named `name`, as the harness would, and
/// exits if it returns: it gets there only when it panicked before it reached the child's run
/// (the harness would then fail it the same way).
pub(crate) fn run_on_test_thread(name: String, test: fn()) -> ! {
    let outcome = match std::thread::Builder::new().name(name).spawn(test) {
        Ok(thread) => thread.join(),
        Err(_) => std::panic::catch_unwind(test),
    };
    std::process::exit(if outcome.is_ok() { 0 } else { 101 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_name_is_recognised_without_being_made() {
        for (module_path, function) in [("suite", "t0001"), ("suite::seed", "t0001"), ("a::b::c", "f")] {
            let name = test_name(module_path, function);
            assert!(is_test_name(name.as_bytes(), module_path, function), "{name}");
        }
        assert!(!is_test_name(b"seed::t0001", "suite::seed", "t000"));
        assert!(!is_test_name(b"seed::t00011", "suite::seed", "t0001"));
        assert!(!is_test_name(b"seedt0001", "suite::seed", "t0001"));
        assert!(!is_test_name(b"other::t0001", "suite::seed", "t0001"));
        assert!(!is_test_name(b"seed::t0001", "suite", "t0001"));
    }
}
