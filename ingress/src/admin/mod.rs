//! The admin side: the operator's org creation and an org admin's provisioning settings.

pub mod api;
pub mod service;

use crate::app::AppState;
use axum::Router;

pub fn router() -> Router<AppState> {
    api::router()
}
