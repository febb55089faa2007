//! The commands of the CI recipes (`docs/ci/github-actions.yml`, the README's CI section),
//! written once: `cargo xtask ci` runs them here, and a test checks that the workflow files are
//! valid YAML whose `run:` steps are these commands.

/// Builds every test binary of the workspace into one archive (the GitHub workflow's build job).
pub(crate) const ARCHIVE: &str = "cargo nextest archive --workspace --archive-file netns-tests.tar.zst";

/// Runs partition `{K}` of 3 of the archive, from a checkout of the sources in the current
/// directory (the GitHub workflow's test job, one per machine).
pub(crate) const PARTITION: &str = "cargo nextest run --archive-file netns-tests.tar.zst --workspace-remap . \
                                    --profile ci --partition count:{K}/3";

/// The README's flake hunting: one test, fifty times, each in a fresh process, stopping at the
/// first failure (nextest's stress mode), on the deliberately flaky test.
pub(crate) const FLAKE_HUNT: &str =
    "cargo nextest run --stress-count 50 --run-ignored only -E 'test(=a_deliberately_flaky_test)'";

/// How many partitions the recipes use.
pub(crate) const PARTITIONS: usize = 3;

/// `PARTITION` for partition `k`.
pub(crate) fn partition(k: usize) -> String {
    PARTITION.replace("{K}", &k.to_string())
}

#[cfg(test)]
mod tests {
    use yaml_rust2::{Yaml, YamlLoader};

    use super::*;
    use crate::util::root;

    fn load(path: &str) -> Yaml {
        let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
        assert_eq!(docs.len(), 1, "{path}: one document");
        docs.remove(0)
    }

    /// Every `run:` of a job's steps, or every line of a job's `script:` and `before_script:`.
    fn commands(doc: &Yaml) -> Vec<String> {
        let mut found = Vec::new();
        let Some(jobs) = doc["jobs"].as_hash().or_else(|| doc.as_hash()) else { return found };
        for job in jobs.values() {
            for step in job["steps"].as_vec().into_iter().flatten() {
                if let Some(run) = step["run"].as_str() {
                    found.push(run.trim().to_string());
                }
            }
            for key in ["before_script", "script"] {
                for line in job[key].as_vec().into_iter().flatten() {
                    found.push(line.as_str().expect("script lines are strings").trim().to_string());
                }
            }
        }
        found
    }

    /// The commands a user copies from the README's CI section, and `.ci/run`'s installation.
    fn documented() -> (String, String) {
        let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
        let start = readme.find("\n## CI\n").expect("README has a CI section");
        let end = readme[start + 1..].find("\n## ").map_or(readme.len(), |e| start + 1 + e);
        (readme[start..end].to_string(), readme)
    }

    #[test]
    fn the_github_workflow_runs_the_commands_ci_runs_here() {
        let doc = load("docs/ci/github-actions.yml");
        assert_eq!(doc["jobs"]["test"]["runs-on"].as_str(), Some("ubuntu-24.04"));
        assert_eq!(doc["jobs"]["test"]["env"]["NETNS_TEST_MODE"].as_str(), Some("sudo"));
        let matrix: Vec<i64> = doc["jobs"]["test"]["strategy"]["matrix"]["partition"]
            .as_vec()
            .expect("a partition matrix")
            .iter()
            .map(|k| k.as_i64().unwrap())
            .collect();
        assert_eq!(matrix, (1..=PARTITIONS as i64).collect::<Vec<_>>());
        let upload = doc["jobs"]["test"]["steps"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|step| step["if"].as_str() == Some("failure()"))
            .expect("a step that uploads the failed tests' artifacts");
        assert!(upload["with"]["path"].as_str().unwrap().contains("netns-artifacts/"));
        let commands = commands(&doc);
        let (ci_section, readme) = documented();
        for command in &commands {
            let generic = command.replace("${{ matrix.partition }}", "{K}");
            let known = generic == ARCHIVE
                || generic == PARTITION
                || readme.contains(&format!("$(command -v sudo) {}", command.trim_start_matches("sudo ")));
            assert!(known, "a workflow step that cargo xtask ci does not run: {command}");
        }
        assert!(commands.iter().any(|c| c == ARCHIVE), "{commands:?}");
        assert!(commands.iter().any(|c| c.replace("${{ matrix.partition }}", "{K}") == PARTITION));
        assert!(ci_section.contains(ARCHIVE), "the README's CI section shows {ARCHIVE}");
        assert!(ci_section.contains(&partition(1)), "the README's CI section shows {}", partition(1));
        assert!(ci_section.contains(FLAKE_HUNT), "the README's CI section shows {FLAKE_HUNT}");
    }

    #[test]
    fn the_gitlab_job_is_privileged_and_runs_the_readme_commands() {
        let doc = load("docs/ci/gitlab-ci.yml");
        let (_, readme) = documented();
        let commands = commands(&doc);
        assert!(commands.contains(&"cargo test --workspace".to_string()), "{commands:?}");
        for command in &commands {
            let as_readme = format!("$(command -v sudo) {command}");
            assert!(readme.contains(command) || readme.contains(&as_readme), "not in the README: {command}");
        }
        assert!(
            doc["tests"]["tags"].as_vec().unwrap().iter().any(|t| t.as_str() == Some("docker-privileged"))
        );
    }
}
