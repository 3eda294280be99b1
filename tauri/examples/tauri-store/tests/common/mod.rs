//! Fixtures of the store UI test: the example registry and a WebDriver client.
pub(crate) mod registry;
pub(crate) mod webdriver;
