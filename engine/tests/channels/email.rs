//! The `email` kind against a real SMTP server (mailin-embedded) that each
//! test starts on loopback: what the server receives, how its replies map
//! to retryable and permanent failures, STARTTLS with AUTH, timeouts, and
//! the conformance check. The TLS fixtures in `testdata/` are a test CA
//! and a `localhost` certificate it signed (valid until 2126; the CA's key
//! was thrown away).

use mailin_embedded::{AuthMechanism, Handler, Response, Server, SslConfig, response};
use std::net::{IpAddr, TcpListener};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;
use toml::Table;
use waymark_channel::conformance::{DeliverKeyed, check_kind, sample_message};
use waymark_engine::channels::email::{EmailKind, IDEMPOTENCY_HEADER, message_id};
use waymark_engine::channels::{Channel, DeliveryError, Message};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/channels/testdata");

/// One mail transaction as the server saw it.
#[derive(Debug, Clone, Default)]
struct Received {
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

/// What the server saw, shared by every connection's handler.
#[derive(Debug, Default)]
struct Seen {
    mail: Vec<Received>,
    /// One per EHLO/HELO, i.e. per connection.
    greetings: usize,
    /// `(mechanism, user, password)` of each AUTH attempt.
    logins: Vec<(&'static str, String, String)>,
}

#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    /// The reply to every RCPT, if not 250.
    refuse_rcpt: Option<(u16, &'static str)>,
    credentials: (&'static str, &'static str),
    current: Received,
}

impl Handler for Recorder {
    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        self.seen.lock().unwrap().greetings += 1;
        response::OK
    }

    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.current = Received {
            from: from.to_string(),
            ..Received::default()
        };
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if let Some((code, text)) = self.refuse_rcpt {
            return Response::custom(code, text.to_string());
        }
        self.current.to.push(to.to_string());
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = std::mem::take(&mut self.current);
        self.seen.lock().unwrap().mail.push(mail);
        response::OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.login("PLAIN", user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.login("LOGIN", user, password)
    }
}

impl Recorder {
    fn login(&mut self, mechanism: &'static str, user: &str, password: &str) -> Response {
        self.seen
            .lock()
            .unwrap()
            .logins
            .push((mechanism, user.to_string(), password.to_string()));
        if (user, password) == self.credentials {
            response::AUTH_OK
        } else {
            response::INVALID_CREDENTIALS
        }
    }
}

/// An SMTP server on a free loopback port, serving on its own thread for
/// the rest of the test process.
struct SmtpServer {
    port: u16,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct ServerOptions {
    refuse_rcpt: Option<(u16, &'static str)>,
    /// STARTTLS with the `localhost` certificate, and AUTH with these
    /// mechanisms (mailin offers AUTH only after STARTTLS).
    tls_auth: Option<Vec<AuthMechanism>>,
}

impl SmtpServer {
    fn start(options: ServerOptions) -> SmtpServer {
        // Both of rustls's providers are compiled into the tests (ring for
        // lettre, aws-lc-rs for mailin's defaults): the server side needs
        // one chosen for the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut server = Server::new(Recorder {
            seen: seen.clone(),
            refuse_rcpt: options.refuse_rcpt,
            credentials: ("mailer", "s3cret 密码"),
            current: Received::default(),
        });
        server
            .with_name("mx.test")
            .with_num_threads(4)
            .with_tcp_listener(listener);
        if let Some(mechanisms) = options.tls_auth {
            server
                .with_ssl(SslConfig::SelfSigned {
                    cert_path: format!("{TESTDATA}/localhost.pem"),
                    key_path: format!("{TESTDATA}/localhost.key"),
                })
                .unwrap();
            for m in mechanisms {
                server.with_auth(m);
            }
        }
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpServer { port, seen }
    }

    fn mail(&self) -> Vec<Received> {
        self.seen.lock().unwrap().mail.clone()
    }
}

/// Settings for a plain-text relay on `port`.
fn settings(port: u16, extra: &str) -> Table {
    format!(
        "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"品牌 <news@example.com>\"\ntimeout = \"5s\"\n{extra}"
    )
    .parse()
    .unwrap()
}

fn channel(settings: &Table) -> Arc<dyn Channel> {
    super::channel(&EmailKind, settings)
}

fn message(to: &str, fields: serde_json::Value) -> Message {
    sample_message("email", to, None, fields)
}

fn cart_message() -> Message {
    message(
        "小王 <wang@example.cn>",
        serde_json::json!({
            "subject": "双十一：你的购物车还在等你",
            "body": "小王，你好！购物车里的商品今晚 24 点前下单立减 50 元。",
            "html": "<p>小王，你好！<b>立减 50 元</b></p>",
        }),
    )
}

fn header(parsed: &mail_parser::Message<'_>, name: &str) -> String {
    parsed
        .header_raw(name.to_string())
        .unwrap_or_else(|| panic!("no {name} header"))
        .trim()
        .to_string()
}

#[tokio::test]
async fn a_message_arrives_with_its_envelope_encoded_subject_both_parts_and_idempotency_headers() {
    let server = SmtpServer::start(ServerOptions::default());
    let channel = channel(&settings(server.port, ""));
    let key = "cart_recovery/v3/u1/i7/s2/0";
    let receipt = channel.deliver_keyed(&cart_message(), key).await.unwrap();
    assert_eq!(
        receipt.provider_id.as_deref(),
        Some("OK"),
        "the server's reply text"
    );

    let mail = server.mail();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].from, "news@example.com");
    assert_eq!(mail[0].to, ["wang@example.cn"]);
    let raw = String::from_utf8(mail[0].data.clone()).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap();
    assert!(
        head.is_ascii(),
        "headers are 7-bit, non-ASCII text encoded:\n{head}"
    );
    assert!(
        head.contains("\r\nSubject: =?utf-8?b?"),
        "RFC 2047:\n{head}"
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail[0].data)
        .unwrap();
    assert_eq!(parsed.subject(), Some("双十一：你的购物车还在等你"));
    let from = parsed.from().and_then(|f| f.first()).unwrap();
    assert_eq!(from.name(), Some("品牌"));
    assert_eq!(from.address(), Some("news@example.com"));
    let to = parsed.to().and_then(|t| t.first()).unwrap();
    assert_eq!(
        (to.name(), to.address()),
        (Some("小王"), Some("wang@example.cn"))
    );
    assert_eq!(
        parsed.body_text(0).as_deref(),
        Some("小王，你好！购物车里的商品今晚 24 点前下单立减 50 元。")
    );
    assert_eq!(
        parsed.body_html(0).as_deref(),
        Some("<p>小王，你好！<b>立减 50 元</b></p>")
    );
    assert!(
        header(&parsed, "Content-Type").starts_with("multipart/alternative"),
        "{head}"
    );
    let expected_id = message_id(key, "example.com");
    assert_eq!(header(&parsed, "Message-ID"), expected_id);
    assert_eq!(
        parsed.message_id(),
        Some(&expected_id[1..expected_id.len() - 1])
    );
    assert_eq!(header(&parsed, IDEMPOTENCY_HEADER), key);
}

#[tokio::test]
async fn without_html_the_message_is_a_single_text_part() {
    let server = SmtpServer::start(ServerOptions::default());
    let channel = channel(&settings(server.port, ""));
    let record = message(
        "wang@example.cn",
        serde_json::json!({ "subject": "Hi", "body": "Plain only" }),
    );
    channel.deliver_keyed(&record, "k").await.unwrap();
    let mail = server.mail();
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail[0].data)
        .unwrap();
    assert!(header(&parsed, "Content-Type").starts_with("text/plain"));
    // The parser keeps the line ends that close the body.
    assert_eq!(parsed.body_text(0).unwrap().trim_end(), "Plain only");
    assert!(!String::from_utf8_lossy(&mail[0].data).contains("text/html"));
}

#[tokio::test]
async fn a_recipient_refused_with_550_fails_permanently_with_the_servers_words() {
    let server = SmtpServer::start(ServerOptions {
        refuse_rcpt: Some((550, "5.1.1 no such user here")),
        ..ServerOptions::default()
    });
    let error = channel(&settings(server.port, ""))
        .deliver_keyed(&cart_message(), "k")
        .await
        .unwrap_err();
    match error {
        DeliveryError::Permanent(text) => {
            assert!(
                text.contains("550") && text.contains("no such user here"),
                "{text}"
            )
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert!(server.mail().is_empty());
}

#[tokio::test]
async fn a_recipient_deferred_with_451_is_retryable() {
    let server = SmtpServer::start(ServerOptions {
        refuse_rcpt: Some((451, "4.7.1 greylisted, try again later")),
        ..ServerOptions::default()
    });
    let error = channel(&settings(server.port, ""))
        .deliver_keyed(&cart_message(), "k")
        .await
        .unwrap_err();
    match error {
        DeliveryError::Retryable(text) => assert!(text.contains("greylisted"), "{text}"),
        other => panic!("expected a retryable failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_accepts_but_never_greets_is_retryable_within_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept connections and hold them open, saying nothing.
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().collect();
        drop(held);
    });
    let mut settings = settings(port, "");
    settings.insert("timeout".into(), "500ms".into());
    let channel = channel(&settings);
    let started = Instant::now();
    let error = channel
        .deliver_keyed(&cart_message(), "k")
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, DeliveryError::Retryable(_)), "{error:?}");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "gave up after {took:?}"
    );
}

/// A relay that speaks just enough SMTP to take a message, waiting
/// `delay` before each reply.
fn slow_relay(delay: Duration) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let mut reply = |text: &str| {
                    std::thread::sleep(delay);
                    writer.write_all(format!("{text}\r\n").as_bytes()).is_ok()
                };
                reply("220 slow.test ESMTP");
                let (mut line, mut in_data) = (String::new(), false);
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    let command = line.trim_end().to_ascii_uppercase();
                    line.clear();
                    let answered = match command.as_str() {
                        "." if in_data => {
                            in_data = false;
                            reply("250 queued")
                        }
                        _ if in_data => true,
                        "DATA" => {
                            in_data = true;
                            reply("354 go ahead")
                        }
                        "QUIT" => {
                            reply("221 bye");
                            false
                        }
                        _ => reply("250 OK"),
                    };
                    if !answered {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_relay_that_answers_each_command_slowly_is_cut_off_at_the_send_timeout() {
    // Each reply comes well within the timeout, the whole exchange
    // (greeting, EHLO, MAIL, RCPT, DATA, the end of data) does not.
    let port = slow_relay(Duration::from_millis(250));
    let mut settings = settings(port, "");
    settings.insert("timeout".into(), "1s".into());
    let started = Instant::now();
    let error = channel(&settings)
        .deliver_keyed(&cart_message(), "k")
        .await
        .unwrap_err();
    let took = started.elapsed();
    match error {
        DeliveryError::Retryable(text) => assert!(text.contains("took over 1s"), "{text}"),
        other => panic!("expected a retryable failure, got {other:?}"),
    }
    assert!(took < Duration::from_millis(1400), "gave up after {took:?}");
    // With time enough, the same relay takes the message.
    settings.insert("timeout".into(), "10s".into());
    let receipt = channel(&settings)
        .deliver_keyed(&cart_message(), "k")
        .await
        .unwrap();
    assert_eq!(receipt.provider_id.as_deref(), Some("queued"));
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let error = channel(&settings(port, ""))
        .deliver_keyed(&cart_message(), "k")
        .await
        .unwrap_err();
    assert!(matches!(error, DeliveryError::Retryable(_)), "{error:?}");
}

/// Settings for STARTTLS to `localhost`, trusting the test CA.
fn starttls(port: u16, credentials: &str) -> Table {
    format!(
        "host = \"localhost\"\nport = {port}\ntls = \"starttls\"\nfrom = \"news@example.com\"\nca_file = \"{TESTDATA}/ca.pem\"\n{credentials}"
    )
    .parse()
    .unwrap()
}

#[tokio::test]
async fn starttls_then_auth_plain_or_login_delivers_with_the_configured_credentials() {
    for (mechanism, name) in [
        (AuthMechanism::Plain, "PLAIN"),
        (AuthMechanism::Login, "LOGIN"),
    ] {
        let server = SmtpServer::start(ServerOptions {
            tls_auth: Some(vec![mechanism]),
            ..ServerOptions::default()
        });
        let settings = starttls(
            server.port,
            "username = \"mailer\"\npassword = \"s3cret 密码\"",
        );
        channel(&settings)
            .deliver_keyed(&cart_message(), "k")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let seen = server.seen.lock().unwrap();
        assert_eq!(
            seen.logins,
            [(name, "mailer".to_string(), "s3cret 密码".to_string())]
        );
        assert_eq!(seen.mail.len(), 1, "{name}");
    }
}

#[tokio::test]
async fn wrong_credentials_fail_permanently() {
    let server = SmtpServer::start(ServerOptions {
        tls_auth: Some(vec![AuthMechanism::Plain]),
        ..ServerOptions::default()
    });
    let settings = starttls(server.port, "username = \"mailer\"\npassword = \"guess\"");
    let error = channel(&settings)
        .deliver_keyed(&cart_message(), "k")
        .await
        .unwrap_err();
    match error {
        DeliveryError::Permanent(text) => assert!(text.contains("535"), "{text}"),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert!(server.mail().is_empty());
}

#[tokio::test]
async fn a_relay_without_starttls_is_refused_when_tls_is_required() {
    let server = SmtpServer::start(ServerOptions::default());
    let error = channel(&starttls(server.port, ""))
        .deliver_keyed(&cart_message(), "k")
        .await
        .unwrap_err();
    match error {
        DeliveryError::Permanent(text) => assert!(text.contains("STARTTLS"), "{text}"),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert!(server.mail().is_empty(), "nothing goes out in clear text");
}

#[tokio::test]
async fn a_channel_reuses_its_pooled_connection() {
    let server = SmtpServer::start(ServerOptions::default());
    let channel = channel(&settings(server.port, ""));
    for key in ["k1", "k2", "k3"] {
        channel.deliver_keyed(&cart_message(), key).await.unwrap();
        // lettre parks the connection from a task of its own once the
        // send has returned; give it a moment.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.mail.len(), 3);
    assert_eq!(seen.greetings, 1, "three sends, one connection");
}

#[tokio::test]
async fn bad_addresses_and_non_text_fields_fail_permanently_before_connecting() {
    let server = SmtpServer::start(ServerOptions::default());
    let channel = channel(&settings(server.port, ""));
    let bad_address = message(
        "not an address",
        serde_json::json!({ "subject": "s", "body": "b" }),
    );
    let list_subject = message(
        "wang@example.cn",
        serde_json::json!({ "subject": ["s"], "body": "b" }),
    );
    for record in [bad_address, list_subject] {
        let error = channel.deliver_keyed(&record, "k").await.unwrap_err();
        assert!(matches!(error, DeliveryError::Permanent(_)), "{error:?}");
    }
    assert_eq!(server.seen.lock().unwrap().greetings, 0);
}

#[tokio::test]
async fn the_email_kind_conforms_and_the_server_sees_both_deliveries_under_one_message_id() {
    let server = SmtpServer::start(ServerOptions::default());
    let delivered = check_kind(&EmailKind, &settings(server.port, ""), &cart_message()).await;
    let mail = server.mail();
    assert_eq!(mail.len(), delivered.accepted);
    let ids: Vec<String> = mail
        .iter()
        .map(|m| {
            let parsed = mail_parser::MessageParser::default()
                .parse(&m.data)
                .unwrap();
            assert_eq!(header(&parsed, IDEMPOTENCY_HEADER), delivered.key);
            header(&parsed, "Message-ID")
        })
        .collect();
    let id = message_id(&delivered.key, "example.com");
    assert_eq!(ids, [id.clone(), id]);
}

#[test]
fn message_ids_are_stable_per_key_and_differ_between_keys() {
    let a = message_id("j/v1/u1/i1/s1/0", "example.com");
    assert_eq!(a, message_id("j/v1/u1/i1/s1/0", "example.com"));
    assert_ne!(a, message_id("j/v1/u1/i1/s1/1", "example.com"));
    assert_eq!(a.len(), "<@example.com>".len() + 32);
    assert!(a.starts_with('<') && a.ends_with("@example.com>"));
}
