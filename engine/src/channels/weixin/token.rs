//! What the `wecom` (企业微信) and `wechat` (公众号) kinds share: an access
//! token cached per channel until shortly before its `expires_in`, fetched
//! by one delivery at a time while the others wait for it (no stampede on
//! the token endpoint); a send that, when the provider says the token is
//! expired or invalid (errcode 40001, 40014, 42001), drops that token, gets
//! another and sends once more; and the reading of `{errcode, errmsg}`
//! answers into receipts and retryable or permanent errors. Both kinds
//! also read their account settings ([`read_account`]) and post their
//! messages ([`Api::send`]) the same way.

use crate::channels::http;
use reqwest::{Client, RequestBuilder, Url};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use toml::Table;
use waymark_channel::Settings;
use waymark_channel::{ConfigError, DeliveryError};

/// How long before its stated expiry a token is no longer used, at most.
const SAFETY_MARGIN: Duration = Duration::from_secs(300);

/// Reads `base_url` (else `default`, the provider's address) and appends
/// each of `paths` to it: the API endpoints, or `None` with the problem
/// recorded at `base_url`. The address may have a path prefix (a proxy),
/// not a query.
pub fn endpoints<const N: usize>(
    s: &mut Settings,
    default: &str,
    what: &str,
    paths: [&str; N],
) -> Option<[Url; N]> {
    let url = s.url("base_url", Some(default), what)?;
    if url.query().is_some() {
        s.error("base_url", "must not have a query string");
        return None;
    }
    let base = url.as_str().trim_end_matches('/');
    let mut endpoints = Vec::with_capacity(N);
    for path in paths {
        match Url::parse(&format!("{base}{path}")) {
            Ok(url) => endpoints.push(url),
            Err(e) => {
                s.error("base_url", format!("`{base}{path}` is not an address: {e}"));
                return None;
            }
        }
    }
    endpoints.try_into().ok()
}

/// How a kind names its account settings.
pub struct AccountKeys<'k> {
    /// The provider's address, when `base_url` is not set.
    pub default_base_url: &'k str,
    /// What `base_url` is, for its errors.
    pub api: &'k str,
    /// The token endpoint's path, then the send endpoint's.
    pub paths: [&'k str; 2],
    /// The key of the account's id, and what it is.
    pub id: [&'k str; 2],
    /// The key of the account's secret, and what it is.
    pub secret: [&'k str; 2],
    /// The kind's own keys, read by the `more` of [`read_account`].
    pub more: &'k [&'k str],
}

/// The settings both kinds have, read.
#[derive(Clone)]
pub struct Account {
    pub token_url: Url,
    pub send_url: Url,
    pub id: String,
    pub secret: String,
    pub timeout: Duration,
}

/// Reads a Weixin kind's settings: `base_url`, the id and the secret, the
/// kind's own (`more`, read after the secret), then `timeout`; every
/// problem is reported at once.
pub fn read_account<T>(
    path: &str,
    table: &Table,
    keys: &AccountKeys<'_>,
    more: impl FnOnce(&mut Settings<'_>) -> Option<T>,
) -> Result<(Account, T), Vec<ConfigError>> {
    let mut known = vec!["base_url", keys.id[0], keys.secret[0]];
    known.extend_from_slice(keys.more);
    known.push("timeout");
    let mut s = Settings::new(path, table, &known);
    let endpoints = endpoints(&mut s, keys.default_base_url, keys.api, keys.paths);
    let id = s.required(keys.id[0], keys.id[1]);
    let secret = s.required(keys.secret[0], keys.secret[1]);
    let more = more(&mut s);
    let timeout = s.timeout();
    s.finish(())?;
    let missing = "a missing or bad setting is an error, reported above";
    let [token_url, send_url] = endpoints.expect(missing);
    let account = Account {
        token_url,
        send_url,
        id: id.expect(missing).to_string(),
        secret: secret.expect(missing).to_string(),
        timeout,
    };
    Ok((account, more.expect(missing)))
}

/// A Weixin channel's connection: where its tokens come from, the one it
/// holds, and the endpoint its messages are posted to.
pub struct Api<S> {
    /// `wechat` or `wecom`, naming the calls in errors.
    kind: &'static str,
    client: Client,
    tokens: TokenCache,
    source: S,
    send_url: Url,
    /// The WeCom corporation whose API rate its calls count against, for
    /// a WeCom kind (see [`super::budget`]).
    budget: Option<String>,
}

impl<S: TokenSource> Api<S> {
    pub fn new(kind: &'static str, client: Client, source: S, send_url: Url) -> Api<S> {
        Api {
            kind,
            client,
            tokens: TokenCache::default(),
            source,
            send_url,
            budget: None,
        }
    }

    /// Counts its calls against WeCom's API rate of corporation `corp`.
    pub fn budgeted(mut self, corp: &str) -> Api<S> {
        self.budget = Some(corp.to_string());
        self
    }

    /// POSTs the message `body` with the cached token (see
    /// [`post_with_token`]) and reads its errcode (see [`Reply::outcome`]):
    /// the reply, and the name of the call for further errors.
    pub async fn send(&self, key: &str, body: String) -> Result<(Reply, String), DeliveryError> {
        let (reply, what) = self.post(key, body).await?;
        reply.outcome(&what, self.errcodes())?;
        Ok((reply, what))
    }

    /// Whose errcodes its answers carry.
    pub fn errcodes(&self) -> Errcodes {
        Errcodes::of_kind(self.kind)
    }

    /// POSTs the message `body` with the cached token: the reply, whatever
    /// its errcode, and the name of the call. [`Api::send`] is this then
    /// [`Reply::outcome`]; a kind with errcodes of its own reads them first.
    /// The JSON `body` goes to the send URL with the cached token as
    /// `access_token` and the idempotency key as a header, a rejected token
    /// replaced once (see [`with_token`]).
    pub async fn post(&self, key: &str, body: String) -> Result<(Reply, String), DeliveryError> {
        let what = format!("{} POST {}", self.kind, self.send_url);
        if let Some(corp) = &self.budget {
            super::budget::wecom_call(corp, self.send_url.path())?;
        }
        let post = |token: String| {
            let mut url = self.send_url.clone();
            url.query_pairs_mut().append_pair("access_token", &token);
            let request = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(http::IDEMPOTENCY_KEY, key)
                .body(body.clone());
            let what = what.clone();
            async move { call(&what, request).await }
        };
        let reply = with_token(&what, self.errcodes(), &self.tokens, &self.source, post).await?;
        Ok((reply, what))
    }
}

/// Whose errcodes an answer carries: WeCom's, or WeChat's (official
/// accounts and mini-programs share theirs). The same number means
/// different things: 40001 is an expired token at WeChat, a bad secret at
/// WeCom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errcodes {
    Wecom,
    Weixin,
}

/// What an errcode means for the send that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrClass {
    /// Busy or a conflict: the same request again, with backoff.
    Retry,
    /// The access token is no longer good: a new one, then once more.
    RefreshToken,
    /// A quota or rate limit of the account: again after this long, not
    /// counted against the message.
    Quota(Duration),
    /// The person cannot be reached this way until something of theirs
    /// changes (no accept left, not following, a closed service window):
    /// recorded, and not tried again.
    Consent,
    /// The request is wrong (a credential, a template, an address): a dead
    /// letter for an operator.
    Permanent,
}

impl Errcodes {
    /// The class of `errcode`, as the platforms document them (anything
    /// not listed is permanent: an operator looks at it).
    pub fn class(self, errcode: i64) -> ErrClass {
        use ErrClass::*;
        const MINUTE: Duration = Duration::from_secs(60);
        match (self, errcode) {
            (_, -1) => Retry,
            // A data version conflict; another app sending the welcome.
            (Errcodes::Wecom, 6000 | 41096) => Retry,
            (Errcodes::Wecom, 40014 | 42001) => RefreshToken,
            // API bans last 60 s, 60 min or the day: look again each minute.
            (Errcodes::Wecom, 45009 | 45011) => Quota(MINUTE),
            // Too many calls at once (parallel polling): shortly, one by one.
            (Errcodes::Wecom, 45033) => Quota(Duration::from_secs(2)),
            // The customer was welcomed already (the welcome kind counts it
            // as delivered); 微信客服's five messages after the customer's
            // last are used up.
            (Errcodes::Wecom, 41051 | 95001) => Consent,
            (Errcodes::Weixin, 40001 | 40014 | 42001) => RefreshToken,
            // The daily quota: look again each hour until it resets.
            (Errcodes::Weixin, 45009) => Quota(Duration::from_secs(3600)),
            (Errcodes::Weixin, 45011 | 43117) => Quota(MINUTE),
            // Concurrent sends to one openid: again in a moment.
            (Errcodes::Weixin, 43108) => Quota(Duration::from_secs(1)),
            // Not following; no accept of the template; the customer-service
            // window closed, or its messages used up.
            (Errcodes::Weixin, 43004 | 43101 | 45015 | 45047) => Consent,
            _ => Permanent,
        }
    }

    /// Whether `errcode` says the access token is no longer good.
    pub fn is_token_error(self, errcode: i64) -> bool {
        self.class(errcode) == ErrClass::RefreshToken
    }

    fn of_kind(kind: &str) -> Errcodes {
        if kind.starts_with("wecom") {
            Errcodes::Wecom
        } else {
            Errcodes::Weixin
        }
    }
}

/// `POST /cgi-bin/stable_token`, the token endpoint of official accounts and
/// mini-programs (not `cgi-bin/token`, which would invalidate the token
/// every other process of the app uses).
pub struct StableToken {
    /// `wechat` or `miniprogram`, naming the calls in errors.
    pub kind: &'static str,
    pub client: Client,
    pub url: Url,
    pub app_id: String,
    pub app_secret: String,
}

impl TokenSource for StableToken {
    async fn fetch(&self, force: bool) -> Result<Fetched, DeliveryError> {
        let what = format!("{} POST {}", self.kind, self.url);
        let body = serde_json::json!({
            "grant_type": "client_credential",
            "appid": self.app_id,
            "secret": self.app_secret,
            "force_refresh": force,
        })
        .to_string();
        let request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let reply = call(&what, request).await?;
        fetched(
            &what,
            &reply,
            Errcodes::Weixin,
            "check app_id, app_secret and the account's IP allowlist",
        )
    }

    fn can_force(&self) -> bool {
        true
    }
}

/// A message's fields as a template message's `data` (`{"thing1":
/// {"value": "…"}}`), leaving out `template` and the field named `link`
/// (`url`, `page`), whose text, unless empty, is given beside.
pub fn template_data(
    fields: &serde_json::Map<String, serde_json::Value>,
    link: &str,
) -> (serde_json::Map<String, serde_json::Value>, Option<String>) {
    let mut data = serde_json::Map::new();
    let mut found = None;
    for (k, v) in fields {
        match k.as_str() {
            "template" => {}
            k if k == link => {
                found = Some(crate::channels::http::field_text(v)).filter(|t| !t.is_empty())
            }
            _ => {
                data.insert(
                    k.clone(),
                    serde_json::json!({ "value": crate::channels::http::field_text(v) }),
                );
            }
        }
    }
    (data, found)
}

/// What a token endpoint gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub token: String,
    pub expires_in: Duration,
}

/// Where a channel gets its access tokens.
pub trait TokenSource: Send + Sync {
    /// Asks for a token; `force` asks for a new one even if the current
    /// one is still valid (when the endpoint can, see [`Self::can_force`]).
    fn fetch(&self, force: bool) -> impl Future<Output = Result<Fetched, DeliveryError>> + Send;
    /// Whether `fetch(true)` differs from `fetch(false)`.
    fn can_force(&self) -> bool;
}

/// One channel's access token.
#[derive(Default)]
pub struct TokenCache {
    slot: tokio::sync::Mutex<Option<Cached>>,
}

struct Cached {
    token: String,
    fresh_until: Instant,
}

impl Cached {
    fn new(fetched: Fetched) -> Cached {
        let margin = SAFETY_MARGIN.min(fetched.expires_in / 10);
        Cached {
            token: fetched.token,
            fresh_until: Instant::now() + fetched.expires_in.saturating_sub(margin),
        }
    }

    fn fresh(&self) -> bool {
        Instant::now() < self.fresh_until
    }
}

impl TokenCache {
    /// The cached token, or a new one if there is none or it is about to
    /// expire. Concurrent callers wait for a single fetch.
    pub async fn get(&self, source: &impl TokenSource) -> Result<String, DeliveryError> {
        let mut slot = self.slot.lock().await;
        if let Some(cached) = slot.as_ref().filter(|c| c.fresh()) {
            return Ok(cached.token.clone());
        }
        let cached = Cached::new(source.fetch(false).await?);
        let token = cached.token.clone();
        *slot = Some(cached);
        Ok(token)
    }

    /// A token other than `rejected`, which the provider refused: the one
    /// another delivery already fetched, else a new one — forced if the
    /// endpoint hands back the rejected token and can be forced.
    pub async fn replace(
        &self,
        rejected: &str,
        source: &impl TokenSource,
    ) -> Result<String, DeliveryError> {
        let mut slot = self.slot.lock().await;
        if let Some(cached) = slot.as_ref().filter(|c| c.fresh() && c.token != rejected) {
            return Ok(cached.token.clone());
        }
        *slot = None;
        let mut fetched = source.fetch(false).await?;
        if fetched.token == rejected && source.can_force() {
            fetched = source.fetch(true).await?;
        }
        let cached = Cached::new(fetched);
        let token = cached.token.clone();
        *slot = Some(cached);
        Ok(token)
    }
}

/// An answer of the WeChat/WeCom APIs: `errcode` (absent means 0),
/// `errmsg`, and the rest.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Reply {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl Reply {
    /// A string (or number) the answer carries under `key`.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.rest.get(key)? {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// `Ok` for errcode 0, else the error its class means
    /// ([`Errcodes::class`]).
    pub fn outcome(&self, what: &str, errcodes: Errcodes) -> Result<(), DeliveryError> {
        if self.errcode == 0 {
            return Ok(());
        }
        let message = format!("{what}: errcode {} {}", self.errcode, self.errmsg);
        Err(match errcodes.class(self.errcode) {
            // A token still refused after a fresh one: later, with whatever is current.
            ErrClass::Retry | ErrClass::RefreshToken => DeliveryError::Retryable(message),
            ErrClass::Quota(wait) => DeliveryError::Quota { message, wait },
            ErrClass::Consent => DeliveryError::Consent(message),
            ErrClass::Permanent => DeliveryError::Permanent(message),
        })
    }
}

/// Sends `request` and reads its `{errcode, …}` answer. An HTTP error
/// status maps as for any HTTP kind; a success without JSON is retryable
/// (a proxy's page, a truncated answer).
pub async fn call(what: &str, request: RequestBuilder) -> Result<Reply, DeliveryError> {
    let answer = http::exchange(what, request).await?;
    if let Some(e) = answer.status_error(what) {
        return Err(e);
    }
    serde_json::from_slice(&answer.body).map_err(|_| {
        DeliveryError::Retryable(format!(
            "{what} answered {} without JSON: {}",
            answer.status,
            answer.text()
        ))
    })
}

/// Runs `post` with the cached token; if the provider rejects the token,
/// posts once more with a replacement. A second rejection is retryable:
/// the outbox tries again later, with whatever token is current then.
pub async fn with_token<S, P, F>(
    what: &str,
    errcodes: Errcodes,
    cache: &TokenCache,
    source: &S,
    post: P,
) -> Result<Reply, DeliveryError>
where
    S: TokenSource,
    P: Fn(String) -> F,
    F: Future<Output = Result<Reply, DeliveryError>>,
{
    let token = cache.get(source).await?;
    let reply = post(token.clone()).await?;
    if !errcodes.is_token_error(reply.errcode) {
        return Ok(reply);
    }
    let fresh = cache.replace(&token, source).await?;
    let again = post(fresh).await?;
    if errcodes.is_token_error(again.errcode) {
        return Err(DeliveryError::Retryable(format!(
            "{what}: errcode {} {} even with a newly fetched access token",
            again.errcode, again.errmsg
        )));
    }
    Ok(again)
}

/// Reads a token endpoint's answer: `access_token` and `expires_in`
/// (seconds; 7200 when absent, as both platforms document). A permanent
/// refusal says what to `check` (the credentials, an allowlist).
pub fn fetched(
    what: &str,
    reply: &Reply,
    errcodes: Errcodes,
    check: &str,
) -> Result<Fetched, DeliveryError> {
    reply.outcome(what, errcodes).map_err(|e| match e {
        DeliveryError::Permanent(m) => DeliveryError::Permanent(format!("{m} ({check})")),
        retryable => retryable,
    })?;
    let token = reply.text("access_token").ok_or_else(|| {
        DeliveryError::Retryable(format!("{what}: the answer has no access_token"))
    })?;
    let seconds = reply
        .rest
        .get("expires_in")
        .and_then(|e| e.as_u64())
        .unwrap_or(7200);
    Ok(Fetched {
        token,
        expires_in: Duration::from_secs(seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Hands out `t1`, `t2`, …; with `sticky`, a plain fetch returns the
    /// previous token again (as `stable_token` does while it is valid).
    #[derive(Default)]
    struct Counter {
        fetches: AtomicUsize,
        forced: AtomicUsize,
        sticky: bool,
        expires_in: u64,
    }

    impl TokenSource for Counter {
        async fn fetch(&self, force: bool) -> Result<Fetched, DeliveryError> {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if force {
                self.forced.fetch_add(1, Ordering::SeqCst);
            }
            let n = self.fetches.fetch_add(1, Ordering::SeqCst);
            let n = if self.sticky && !force && n > 0 {
                n
            } else {
                n + 1
            };
            Ok(Fetched {
                token: format!("t{n}"),
                expires_in: Duration::from_secs(self.expires_in.max(1)),
            })
        }

        fn can_force(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn concurrent_deliveries_share_one_fetch() {
        let cache = Arc::new(TokenCache::default());
        let source = Arc::new(Counter {
            expires_in: 7200,
            ..Counter::default()
        });
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (cache, source) = (cache.clone(), source.clone());
                tokio::spawn(async move { cache.get(source.as_ref()).await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "t1");
        }
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_rejected_token_is_replaced_once_for_all_who_saw_it_rejected() {
        let cache = TokenCache::default();
        let source = Counter {
            expires_in: 7200,
            ..Counter::default()
        };
        assert_eq!(cache.get(&source).await.unwrap(), "t1");
        assert_eq!(cache.replace("t1", &source).await.unwrap(), "t2");
        assert_eq!(
            cache.replace("t1", &source).await.unwrap(),
            "t2",
            "a second delivery that saw t1 rejected takes t2"
        );
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
        assert_eq!(source.forced.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_refresh_that_returns_the_rejected_token_is_forced() {
        let cache = TokenCache::default();
        let source = Counter {
            sticky: true,
            expires_in: 7200,
            ..Counter::default()
        };
        assert_eq!(cache.get(&source).await.unwrap(), "t1");
        assert_eq!(cache.replace("t1", &source).await.unwrap(), "t3");
        assert_eq!(source.forced.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_token_is_fetched_again_shortly_before_it_expires() {
        let cache = TokenCache::default();
        let source = Counter {
            expires_in: 1,
            ..Counter::default()
        };
        assert_eq!(cache.get(&source).await.unwrap(), "t1");
        assert_eq!(cache.get(&source).await.unwrap(), "t1");
        tokio::time::sleep(Duration::from_millis(950)).await;
        assert_eq!(cache.get(&source).await.unwrap(), "t2");
    }

    #[test]
    fn errcodes_map_to_outcomes() {
        let reply = |code: i64| Reply {
            errcode: code,
            errmsg: "msg".into(),
            rest: Default::default(),
        };
        use Errcodes::{Wecom, Weixin};
        assert_eq!(reply(0).outcome("w", Wecom), Ok(()));
        assert!(matches!(
            reply(-1).outcome("w", Weixin),
            Err(DeliveryError::Retryable(m)) if m == "w: errcode -1 msg"
        ));
        assert!(matches!(
            reply(45009).outcome("w", Weixin),
            Err(DeliveryError::Quota { wait, .. }) if wait == Duration::from_secs(3600)
        ));
        assert!(matches!(
            reply(43101).outcome("w", Weixin),
            Err(DeliveryError::Consent(_))
        ));
        assert!(matches!(
            reply(81013).outcome("w", Wecom),
            Err(DeliveryError::Permanent(_))
        ));
    }

    /// Every errcode the platforms' documentation lists, in its class:
    /// retry, refresh the token, quota (defer), consent (stop), permanent.
    #[test]
    fn every_listed_errcode_has_its_class() {
        use ErrClass::*;
        use Errcodes::{Wecom, Weixin};
        let minute = Duration::from_secs(60);
        let table: &[(Errcodes, i64, ErrClass)] = &[
            (Wecom, -1, Retry),
            (Wecom, 6000, Retry),
            (Wecom, 41096, Retry),
            (Wecom, 40014, RefreshToken),
            (Wecom, 42001, RefreshToken),
            // At WeCom 40001 is a bad secret, not an expired token.
            (Wecom, 40001, Permanent),
            (Wecom, 45009, Quota(minute)),
            (Wecom, 45033, Quota(Duration::from_secs(2))),
            (Wecom, 95001, Consent),
            (Wecom, 41051, Consent),
            (Wecom, 40003, Permanent),
            (Wecom, 40031, Permanent),
            (Wecom, 48002, Permanent),
            (Wecom, 60020, Permanent),
            (Wecom, 81013, Permanent),
            (Wecom, 40056, Permanent),
            (Weixin, -1, Retry),
            (Weixin, 40001, RefreshToken),
            (Weixin, 40014, RefreshToken),
            (Weixin, 42001, RefreshToken),
            (Weixin, 45009, Quota(Duration::from_secs(3600))),
            (Weixin, 45011, Quota(minute)),
            (Weixin, 43117, Quota(minute)),
            (Weixin, 43108, Quota(Duration::from_secs(1))),
            (Weixin, 43004, Consent),
            (Weixin, 43101, Consent),
            (Weixin, 45015, Consent),
            (Weixin, 45047, Consent),
            (Weixin, 40003, Permanent),
            (Weixin, 40037, Permanent),
            (Weixin, 41030, Permanent),
            (Weixin, 47003, Permanent),
        ];
        for (platform, code, class) in table {
            assert_eq!(platform.class(*code), *class, "{platform:?} {code}");
        }
        assert!(Weixin.is_token_error(40001) && !Wecom.is_token_error(40001));
    }
}
