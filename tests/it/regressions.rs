//! Regression tests named after the bugs they pin.

use crate::util::*;
use std::time::Duration;

/// An override's `expires_in` was added to the current time unchecked: a
/// huge value overflowed (a panic, and with it the daemon, in debug
/// builds). It now saturates and the override simply never expires.
#[test]
fn override_with_huge_expiry_does_not_overflow() {
    let dir = TempDir::new("reg-expiry");
    let dns_port = free_port("127.0.0.1");
    let api_port = free_port("127.0.0.1");
    let yaml = format!(
        "dns: {{ listen_address: \"127.0.0.1:{dns_port}\", zones: [gslb.test] }}\n\
         overwatch: {{ data_dir: \"{}\" }}\n\
         regions:\n  - name: east\n    servers:\n      - {{ address: 127.0.0.2, port: 1, service: app.gslb.test }}\n    health_check: {{ type: tcp, interval: 1s, timeout: 500ms }}\n\
         domains:\n  - {{ name: app.gslb.test, regions: [east] }}\n\
         api: {{ address: \"127.0.0.1:{api_port}\" }}\n",
        dir.path().join("data").display()
    );
    let _d = Daemon::start(&dir, "ow", &yaml, "overwatch");
    let api = format!("http://127.0.0.1:{api_port}");
    wait_for("API ready", Duration::from_secs(10), || {
        http_get(&format!("{api}/api/v1/ready")).filter(|(c, _)| *c == 200)
    });
    let (code, body) = http(
        &format!("{api}/api/v1/overwatch/backends/app.gslb.test/127.0.0.2/1/override"),
        "POST",
        Some(r#"{"healthy": true, "reason": "forever", "expires_in": "18446744073709551615s"}"#),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_get(&format!("{api}/api/v1/overrides")).unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("forever"), "{body}");
    assert_eq!(
        http_get(&format!("{api}/api/v1/live")).map(|r| r.0),
        Some(200)
    );
}
