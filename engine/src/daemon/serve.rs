//! Serving the API over hyper's HTTP/1.1 connections directly, so that slow
//! or idle clients cannot hold the daemon's file descriptors: at most
//! `http.max_connections` are held at once (more wait in the kernel's
//! accept queue), a request's head must arrive within
//! `http.header_read_timeout` of its first byte, its body within
//! `http.body_read_timeout`, and a connection with no request under way is
//! closed after `http.idle_timeout`. hyper's own answers to requests it
//! cannot parse (400, 414, 431) carry an empty body; they are rewritten
//! to the API's JSON error shape on their way out.

use crate::config::Http;
use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// requests under way finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    http: Http,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(http.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let (router, stopping) = (router.clone(), stopping.clone());
        connections.spawn(async move {
            connection(stream, router, http, stopping).await;
            drop(permit);
        });
    }
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
}

/// What the watchdog of one connection needs to know.
struct State {
    /// Requests in the service.
    busy: usize,
    /// When the connection last became idle (opened, or a response ready).
    idle_since: Instant,
    /// When the first byte of the next request's head arrived, if one did.
    head_started: Option<Instant>,
}

struct Shared {
    state: Mutex<State>,
    /// Woken when a head starts or a request ends.
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A request in the service: the connection is busy until it drops.
struct Busy(Arc<Shared>);

impl Busy {
    fn new(shared: &Arc<Shared>) -> Busy {
        let mut s = shared.lock();
        s.busy += 1;
        s.head_started = None;
        drop(s);
        Busy(shared.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.busy -= 1;
        s.idle_since = Instant::now();
        drop(s);
        self.0.changed.notify_one();
    }
}

async fn connection(
    stream: TcpStream,
    router: Router,
    http: Http,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            busy: 0,
            idle_since: Instant::now(),
            head_started: None,
        }),
        changed: Notify::new(),
    });
    let io = TokioIo::new(Watched {
        inner: stream,
        shared: shared.clone(),
        out: Vec::new(),
    });
    let service_shared = shared.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = Busy::new(&service_shared);
        let router = router.clone();
        async move {
            let request = request.map(|body| {
                Body::new(Timed {
                    inner: body,
                    deadline: Box::pin(tokio::time::sleep(http.body_read_timeout)),
                })
            });
            let response = router.oneshot(request).await;
            drop(busy);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let deadline = {
            let s = shared.lock();
            if s.busy > 0 {
                None
            } else if let Some(head) = s.head_started {
                Some(head + http.header_read_timeout)
            } else {
                Some(s.idle_since + http.idle_timeout)
            }
        };
        let wake = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shared.changed.notified() => {}
            changed = stopping.changed(), if !closing => {
                if changed.is_err() || *stopping.borrow() {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if deadline.is_some_and(|d| d <= Instant::now()) {
                    let s = shared.lock();
                    let what = if s.head_started.is_some() { "header_read_timeout" } else { "idle_timeout" };
                    tracing::debug!(timeout = what, "closing a slow or idle connection");
                    return;
                }
            }
        }
    }
}

/// A request body that fails once `http.body_read_timeout` has passed
/// since its request reached the service.
struct Timed {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
}

/// The error a body that came too slowly ends with; the handlers answer 408.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within http.body_read_timeout")]
pub struct BodyTimeout;

impl hyper::body::Body for Timed {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimeout))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket, noting when a request head starts and
/// rewriting hyper's bodiless error answers.
struct Watched {
    inner: TcpStream,
    shared: Arc<Shared>,
    /// Bytes of a rewritten answer not yet written.
    out: Vec<u8>,
}

impl Watched {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            let mut s = self.shared.lock();
            if s.busy == 0 && s.head_started.is_none() {
                s.head_started = Some(Instant::now());
                drop(s);
                self.shared.changed.notify_one();
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(answer) = json_error_answer(buf) {
            self.out = answer;
            // Buffered: written by this drain, or the flush hyper does next.
            let _ = self.drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// hyper's answer to a request it could not parse — a whole 4xx head with
/// `content-length: 0` (the API's own 4xx answers all have bodies) — as
/// the same status with the API's JSON error body.
fn json_error_answer(head: &[u8]) -> Option<Vec<u8>> {
    if !head.starts_with(b"HTTP/1.1 4") || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let (status_line, headers) = text.split_once("\r\n")?;
    let lines: Vec<&str> = headers
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .collect();
    if !lines
        .iter()
        .any(|l| l.eq_ignore_ascii_case("content-length: 0"))
    {
        return None;
    }
    let code = status_line.split(' ').nth(1)?;
    let (field, message) = match code {
        "414" => ("uri", "the request target is too long"),
        "431" => ("headers", "the request's headers are too large"),
        _ => (
            "request",
            "not a valid HTTP/1.1 request (its request line or a header is malformed)",
        ),
    };
    let body = serde_json::json!({"error": {"field": field, "message": message}}).to_string();
    let mut out = format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for line in lines {
        let name = line.split(':').next().unwrap_or("").trim();
        if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("connection")
        {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bodiless_error_answers_get_the_json_error_shape() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 02:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(json_error_answer(head).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("date: Thu"));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["field"], "headers");
        // An answer with a body, or a success, passes through as it is.
        assert!(
            json_error_answer(b"HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\n\r\n").is_none()
        );
        assert!(json_error_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
