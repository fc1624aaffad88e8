//! The frame every page shares: title, stylesheet, who is signed in, the CSRF value, a notice
//! or an error message.

use super::assets;

/// Values `base.html` reads.
pub struct Layout {
    pub title: &'static str,
    pub css: &'static str,
    pub csrf: String,
    pub signed_in_as: Option<String>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

impl Layout {
    /// A frame for a page titled `title`, for the browser described by `browser`.
    pub fn new(title: &'static str, browser: &super::Browser) -> Self {
        Self {
            title,
            css: assets::stylesheet_path(),
            csrf: browser.csrf_token(),
            signed_in_as: browser.user.as_ref().map(|u| u.display_name.clone()),
            notice: None,
            error: None,
        }
    }

    /// With an error message (shown as a sentence: the first letter upper-cased).
    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        let error = error.into();
        let mut chars = error.chars();
        self.error = Some(match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => error,
        });
        self
    }

    /// With a notice.
    pub fn with_notice(mut self, notice: impl Into<String>) -> Self {
        self.notice = Some(notice.into());
        self
    }
}
