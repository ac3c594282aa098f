//! The admin side: the operator's org creation, an org admin's provisioning settings
//! (the JSON API), the org chart (`org_chart`) and the Okta integration page (HTML).

pub mod api;
pub mod org_chart;
pub mod page;
pub mod service;

use crate::state::AppState;
use axum::Router;

pub fn router() -> Router<AppState> {
    api::router()
        .merge(org_chart::router())
        .merge(page::router())
}
