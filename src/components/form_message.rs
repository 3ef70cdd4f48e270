use crate::errors::AppError;
use leptos::prelude::*;

/// A form's failure, announced to screen readers.
#[component]
pub fn FormError(error: AppError) -> impl IntoView {
    view! { <p class="form-error" role="alert">{error.to_string()}</p> }
}

/// A form's success, announced politely.
#[component]
pub fn FormOk(text: &'static str) -> impl IntoView {
    view! { <p class="form-ok" role="status">{text}</p> }
}
