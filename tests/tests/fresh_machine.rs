//! The README's commands for a fresh machine work as written, both on a machine that is root
//! without sudo and for a sudo user.

/// The shell block under "On a fresh machine".
fn fresh_machine_block() -> String {
    // Read at compile time: the rootless run executes a copy of this binary as `nobody`, who
    // need not be able to read the checkout.
    let readme = include_str!("../../README.md");
    let section = readme.split("## On a fresh machine").nth(1).expect("the README has the section");
    let block = section.split("```sh\n").nth(1).expect("the section has a shell block");
    block.split("```").next().unwrap().to_string()
}

#[test]
fn the_fresh_machine_commands_need_no_sudo_and_skip_nothing() {
    let block = fresh_machine_block();
    let commands: Vec<&str> =
        block.lines().filter(|line| !line.trim().is_empty() && !line.starts_with('#')).collect();
    // CI and the README's readers run this line; it must not hang off an installation.
    assert!(commands.contains(&"cargo test --workspace"), "{block}");
    for command in &commands {
        // Root without sudo has no `sudo`; `a && b` skips b when a fails.
        assert!(!command.starts_with("sudo "), "`{command}` fails where root has no sudo");
        assert!(!command.contains("&&"), "`{command}` skips the rest when its first part fails");
    }
    // The programs the tests run beside ours.
    let install = commands.iter().find(|c| c.contains("apt-get install")).expect("an installation line");
    for package in ["iputils-ping", "tshark", "procps"] {
        assert!(install.split_whitespace().any(|word| word == package), "{install} lacks {package}");
    }
    let syntax = std::process::Command::new("sh").args(["-n", "-c", &block]).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
}
