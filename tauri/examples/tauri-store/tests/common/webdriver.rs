//! A small W3C WebDriver client (the subset the store test uses), over `tauri-driver`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key W3C WebDriver uses for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One WebDriver session: the app's window.
pub(crate) struct Session {
    base: String,
    agent: ureq::Agent,
}

/// A WebDriver error or an unexpected answer, with the command that caused it.
#[derive(Debug)]
pub(crate) struct WebDriverError(pub String);

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, WebDriverError>;

fn request(agent: &ureq::Agent, method: &str, url: &str, body: Option<Value>) -> Result<Value> {
    let response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        (_, body) => agent.post(url).send_json(body.unwrap_or_else(|| json!({}))),
    };
    let mut response = response.map_err(|e| WebDriverError(format!("{method} {url}: {e}")))?;
    let value: Value = response
        .body_mut()
        .read_json()
        .map_err(|e| WebDriverError(format!("{method} {url}: unreadable answer: {e}")))?;
    let value = value.get("value").cloned().unwrap_or(Value::Null);
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        let message = value.get("message").and_then(Value::as_str).unwrap_or_default();
        return Err(WebDriverError(format!("{method} {url}: {error}: {message}")));
    }
    Ok(value)
}

impl Session {
    /// Starts the app `application` through the driver at `base` (`http://127.0.0.1:PORT`).
    pub(crate) fn start(base: &str, application: &str) -> Result<Self> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "wry",
            "tauri:options": {"application": application}
        }}});
        // tauri-driver listens before WebKitWebDriver does: retry for a while.
        let deadline = Instant::now() + Duration::from_secs(30);
        let value = loop {
            match request(&agent, "POST", &format!("{base}/session"), Some(capabilities.clone())) {
                Ok(value) => break value,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(250)),
                Err(error) => return Err(error),
            }
        };
        let id = value["sessionId"]
            .as_str()
            .ok_or_else(|| WebDriverError(format!("new session: no sessionId in {value}")))?
            .to_owned();
        Ok(Self { base: format!("{base}/session/{id}"), agent })
    }

    fn post(&self, path: &str, body: Value) -> Result<Value> {
        request(&self.agent, "POST", &format!("{}{path}", self.base), Some(body))
    }

    fn get(&self, path: &str) -> Result<Value> {
        request(&self.agent, "GET", &format!("{}{path}", self.base), None)
    }

    /// Runs `script` in the page (`return …`) with `args`.
    pub(crate) fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.post("/execute/sync", json!({"script": script, "args": args}))
    }

    /// Waits until `script` returns something truthy (not null, false, "" or 0) and returns it.
    pub(crate) fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            last = self.execute(script, json!([]))?;
            let truthy = match &last {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return Ok(last);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let message = self.text("#message").unwrap_or_default();
        Err(WebDriverError(format!("timed out waiting for {what} (last: {last}; the page says: {message})")))
    }

    /// The first element matching `css`.
    pub(crate) fn find(&self, css: &str) -> Result<String> {
        let value = self.post("/element", json!({"using": "css selector", "value": css}))?;
        value[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| WebDriverError(format!("{css}: no element in {value}")))
    }

    /// Clicks the element matching `css` (a real pointer click through the driver).
    pub(crate) fn click(&self, css: &str) -> Result<()> {
        let element = self.find(css)?;
        self.post(&format!("/element/{element}/click"), json!({})).map(drop)
    }

    /// Types `text` into the element matching `css`.
    pub(crate) fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let element = self.find(css)?;
        self.post(&format!("/element/{element}/value"), json!({"text": text})).map(drop)
    }

    /// The rendered text of the element matching `css`.
    pub(crate) fn text(&self, css: &str) -> Result<String> {
        let element = self.find(css)?;
        let value = self.get(&format!("/element/{element}/text"))?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Ends the session (the driver closes the app).
    pub(crate) fn end(self) -> Result<()> {
        request(&self.agent, "DELETE", &self.base, None).map(drop)
    }
}
