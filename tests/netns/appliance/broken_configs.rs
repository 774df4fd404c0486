//! Broken configs: `paf check` names each bad key and exits 2; `paf run` exits 2 before
//! opening the TAP.

use super::*;

/// Five broken configs and the key each error must name.
const BROKEN: [(&str, &str); 5] = [
    (
        "[[listener]]\nname = \"x\"\nport = 80\ncolour = \"blue\"\n",
        "colour",
    ),
    (
        "[[listener]]\nname = \"x\"\nport = 80\n[[listener.route]]\naction = \"proxy\"\n\
         upstream = \"nope\"\n",
        "listener[0].route[0].upstream",
    ),
    (
        "[[listener]]\nname = \"x\"\nport = 443\nprotocol = \"https\"\n\
         certificate = \"missing.pem\"\nkey = \"missing.key\"\n",
        "listener[0].certificate",
    ),
    (
        "[[listener]]\nname = \"x\"\nport = 80\n[[listener]]\nname = \"y\"\nport = 80\n",
        "listener[1].port",
    ),
    (
        "[[listener]]\nname = \"x\"\nport = 80\n[[upstream]]\nname = \"u\"\n\
         urls = [\"http://198.18.0.1\"]\nconnect_timeout = \"5 parsecs\"\n",
        "connect_timeout",
    ),
];

#[test]
fn broken_configs_name_the_bad_key_and_never_touch_the_tap() {
    if skip("broken_configs_name_the_bad_key_and_never_touch_the_tap") {
        return;
    }
    let ns = Netns::new("applbad");
    let dir = Scratch::new("bad");
    // Link events on the TAP while the broken configs run: opening it would bring carrier up.
    let mut monitor = ns.spawn("ip", ["-o", "monitor", "link"]);
    std::thread::sleep(Duration::from_millis(300));
    for (i, (text, key)) in BROKEN.iter().enumerate() {
        let file = dir.write(&format!("bad{i}.toml"), text);
        let check = run_timeout(Command::new(PAF).args(["check", "--config", &file]), T);
        assert_eq!(check.code(), Some(2), "{check}");
        assert!(
            check.stderr.contains(&format!(": {key}: ")),
            "check of bad{i} does not name {key}: {check}"
        );
        let mut cmd = ns.cmd(PAF);
        cmd.args(["run", "--tap", common::TAP, "--config", &file]);
        let run = run_timeout(&mut cmd, Duration::from_secs(20));
        assert_eq!(run.code(), Some(2), "run of bad{i}: {run}");
        assert!(run.stderr.contains(key), "{run}");
        assert!(!run.stderr.contains("serving"), "{run}");
    }
    let link = ns.run("ip", ["link", "show", common::TAP], T);
    assert!(link.stdout.contains("NO-CARRIER"), "{link}");
    std::thread::sleep(Duration::from_millis(300));
    let events = monitor.stdout();
    assert!(
        !events.contains(common::TAP),
        "the TAP saw link events:\n{events}"
    );
    // The monitor does see a run that opens the TAP (so its silence above means something).
    let good = dir.write(
        "good.toml",
        "[[listener]]\nname = \"x\"\nport = 80\n[[listener.route]]\naction = \"health\"\n",
    );
    let mut paf = start(&ns, &good);
    std::thread::sleep(Duration::from_millis(300));
    assert!(paf.stop(Duration::from_secs(20)).success());
    std::thread::sleep(Duration::from_millis(300));
    monitor.stop(Duration::from_secs(3));
    assert!(
        monitor.stdout().contains(common::TAP),
        "monitor saw nothing"
    );
}
