//! The HTML shell every server-rendered page shares (the admin pages and the employee
//! pages): doctype, language, character set, viewport and title, then what the page adds to
//! its head.

use maud::{DOCTYPE, Markup, html};

/// A whole page: titled `title` · Roster, with `head_extra` (its style or scripts) after the
/// title and `body` as its body.
pub(crate) fn shell(title: &str, head_extra: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Roster" }
                (head_extra)
            }
            body { (body) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_holds_the_head_extra_after_the_title() {
        let page = shell("T <x>", html! { style { "p{}" } }, html! { p { "b" } });
        assert_eq!(
            page.into_string(),
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>T &lt;x&gt; · Roster</title><style>p{}</style></head>\
             <body><p>b</p></body></html>"
        );
    }
}
