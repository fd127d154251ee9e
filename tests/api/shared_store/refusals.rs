//! A shared store the binary cannot use at start-up (nothing listening, a URL that is not
//! PostgreSQL's or not a URL, a wrong password, a database that does not exist): it does
//! not serve, but exits with code 2 and one line on stderr saying why, as for a bad flag;
//! the password is never shown (the URL only redacted, with `***`), not even in the logs
//! at debug level.

use std::str::FromStr;

use super::*;

/// A password no server knows, to find in what the binary prints.
const WRONG_PASSWORD: &str = "Wr0ng-Passw0rd-7c1e9a44";

/// How the URL reaches the binary.
#[derive(Debug, Clone, Copy)]
enum Via {
    Flag,
    Env,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_database_at_start_up_is_one_line_and_exit_code_2() {
    // Arrange: the test cluster's address and password, and a port where nothing listens
    // (bound, never listening, for as long as `_closed` lives).
    let database = fresh_database().await;
    let config = tokio_postgres::Config::from_str(&database.url).expect("the test URL");
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("the test database is reached over TCP: {other:?}"),
    };
    let port = config.get_ports()[0];
    let (closed_url, _closed) = closed_port_url();
    let closed_port = closed_url.rsplit(':').next().unwrap().to_owned();
    let good = database.password.as_str();
    // (case, URL, how it is given, the secret it holds, what the line says)
    let cases: Vec<(&str, String, Via, &str, &str)> = vec![
        (
            "nothing listens",
            format!("postgres://postgres:{WRONG_PASSWORD}@127.0.0.1:{closed_port}/postgres"),
            Via::Flag,
            WRONG_PASSWORD,
            "cannot reach the database",
        ),
        (
            "nothing listens, from the environment",
            format!("postgresql://postgres:{WRONG_PASSWORD}@127.0.0.1:{closed_port}/postgres"),
            Via::Env,
            WRONG_PASSWORD,
            "cannot reach the database",
        ),
        (
            "a MySQL URL",
            format!("mysql://root:{WRONG_PASSWORD}@127.0.0.1:3306/participants"),
            Via::Flag,
            WRONG_PASSWORD,
            "--database-url",
        ),
        (
            "not a URL",
            format!("not a url {WRONG_PASSWORD}"),
            Via::Flag,
            WRONG_PASSWORD,
            "--database-url",
        ),
        (
            "not a URL, from the environment",
            WRONG_PASSWORD.to_owned(),
            Via::Env,
            WRONG_PASSWORD,
            "--database-url",
        ),
        (
            "a wrong password",
            format!(
                "postgres://postgres:{WRONG_PASSWORD}@{host}:{port}/{}",
                database.name
            ),
            Via::Flag,
            WRONG_PASSWORD,
            "password authentication failed",
        ),
        (
            "a wrong password as a query parameter",
            format!(
                "postgres://postgres@{host}:{port}/{}?password={WRONG_PASSWORD}",
                database.name
            ),
            Via::Flag,
            WRONG_PASSWORD,
            "password authentication failed",
        ),
        (
            "a database that does not exist",
            format!(
                "postgres://postgres:{good}@{host}:{port}/no_such_database_{}",
                unique()
            ),
            Via::Flag,
            good,
            "does not exist",
        ),
    ];

    for (case, url, via, secret, says) in cases {
        for debug in [false, true] {
            let mut args = vec![];
            let mut env = vec![];
            match via {
                Via::Flag => args.extend(["--database-url", url.as_str()]),
                Via::Env => env.push(("PARTICIPANTS_DATABASE_URL", url.as_str())),
            }
            if debug {
                args.extend(["--log-format", "json"]);
                env.push(("RUST_LOG", "debug"));
            }
            let dir = tempfile::tempdir().unwrap();

            // Act
            let (status, stderr) = run_to_exit(dir.path(), &args, &env).await;

            // Assert: exit code 2, the reason on one line (the last, after any log lines
            // at debug), no password anywhere, and the URL, if shown, redacted.
            let case = format!("{case} ({via:?}, debug logs {debug})");
            assert_eq!(
                status.code(),
                Some(2),
                "{case}: {status:?}, stderr:\n{stderr}"
            );
            assert!(
                !stderr.contains(secret),
                "{case}: the password leaked:\n{stderr}"
            );
            let lines = lines(&stderr);
            if !debug {
                assert_eq!(lines.len(), 1, "{case}: one line:\n{stderr}");
            }
            let line = lines.last().copied().unwrap_or_default();
            assert!(
                line.starts_with("participants-facade: "),
                "{case}: the line is the binary's own:\n{stderr}"
            );
            assert!(
                line.contains(says),
                "{case}: the line says {says:?}:\n{stderr}"
            );
            // (`USER:PASSWORD`: the example of a URL's shape, in the bad-URL message.)
            for (at, _) in line.match_indices("://") {
                let authority = line[at + 3..].split(['/', ' ']).next().unwrap_or_default();
                if let Some((user_info, _)) = authority.rsplit_once('@') {
                    assert!(
                        !user_info.contains(':')
                            || user_info.ends_with(":***")
                            || user_info == "USER:PASSWORD",
                        "{case}: the URL is shown unredacted: {line}"
                    );
                }
            }
        }
    }
}
