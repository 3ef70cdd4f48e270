use crate::errors::AppError;
use leptos::prelude::*;

/// An error as the user sees it: what went wrong, in the app's words.
#[component]
pub fn ErrorNotice(error: AppError) -> impl IntoView {
    let title = match &error {
        AppError::BadRequest(_) => "This view cannot be shown",
        AppError::Unauthorized(_) => "Sign-in required",
        AppError::Forbidden(_) => "Not allowed",
        AppError::NotFound(_) => "Not found",
        _ => "Something went wrong",
    };
    view! {
        <div class="card notice error" role="alert">
            <h2>{title}</h2>
            <p>{error.to_string()}</p>
        </div>
    }
}
