//! Restoring one file from the pages (only with `--allow-restore`): to its
//! original place, after a page that lists what it replaces and with the
//! pre-restore safety snapshot, or into a chosen folder. Both steps are
//! POST forms carrying the CSRF token.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use maud::{Markup, html};
use snap::ops::browse::components;
use snap::ops::paths::PathArg;
use snap::ops::restore::{PlanAction, prepare, refuse_conflicts, restore_plan};
use snap::{Overwrite, RestoreOptions};

use super::layout::{bytes, page, snapshot_href};
use super::snapshot::{Found, resolve};
use crate::cli::hooks::{Hooked, around_in};
use crate::cli::ui::security::check_csrf;
use crate::cli::ui::state::App;
use crate::cli::ui::{UiError, blocking};

/// The restore form on a file's page, or why there is none.
pub fn form(app: &App, found: &Found) -> Markup {
    if !app.allow_restore {
        return html! {
            p #restore-off .muted { "Restoring is off: start the server with `snap ui --allow-restore` to restore files from here." }
        };
    }
    let original = PathArg::original(&found.snapshot, &found.path);
    html! {
        form #restore .box method="post" action="/restore/plan" {
            input type="hidden" name="csrf" value=(app.csrf());
            input type="hidden" name="snapshot" value=(found.id.to_hex());
            input type="hidden" name="path" value=(found.path);
            label {
                "Restore into folder "
                input type="text" name="to" placeholder=(original.as_ref().and_then(|p| p.parent()).map_or_else(|| "/absolute/folder".to_string(), |p| p.display().to_string()));
            }
            " "
            button #restore-button type="submit" { "Restore…" }
            p .muted {
                @if let Some(original) = &original {
                    "Leave the folder empty to put it back at " code { (original.display()) }
                    " (a safety snapshot of what it replaces is taken first)."
                } @else {
                    "Give an absolute folder to restore into."
                }
            }
        }
    }
}

/// The fields of both restore forms.
#[derive(serde::Deserialize)]
pub struct RestoreForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    snapshot: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    to: String,
}

/// What a restore form asks for, checked.
struct Request {
    found: Found,
    /// The folder the file goes into.
    target: PathBuf,
    /// Whether that is where it came from (then it may replace what is there).
    original: bool,
}

impl Request {
    /// The path in the snapshot, as restore takes it.
    fn rel(&self) -> String {
        components(&self.found.path).join("/")
    }

    fn options(&self) -> RestoreOptions {
        RestoreOptions {
            target: self.target.clone(),
            // Back to its place it replaces what is there (after the safety
            // snapshot); into another folder it never replaces anything.
            overwrite: if self.original {
                Overwrite::Always
            } else {
                Overwrite::Refuse
            },
            ..RestoreOptions::default()
        }
    }
}

fn check(app: &App, form: &RestoreForm) -> Result<Request, UiError> {
    if !app.allow_restore {
        return Err(UiError::new(
            StatusCode::FORBIDDEN,
            "restoring is off: start the server with `snap ui --allow-restore`",
        ));
    }
    check_csrf(app, &form.csrf)?;
    let found = resolve(app, &form.snapshot, &form.path)?;
    if found.path.is_empty() {
        return Err(UiError::bad_request(
            "pick a file or folder inside the snapshot to restore",
        ));
    }
    let to = form.to.trim();
    if to.is_empty() {
        let original = PathArg::original(&found.snapshot, &found.path).ok_or_else(|| {
            UiError::bad_request(format!(
                "`{}` has no original place on this machine; give a folder to restore into",
                found.path
            ))
        })?;
        let target = original
            .parent()
            .map(PathBuf::from)
            .ok_or_else(|| UiError::bad_request("the original place has no parent folder"))?;
        return Ok(Request {
            found,
            target,
            original: true,
        });
    }
    let target = PathBuf::from(to);
    if !target.is_absolute() {
        return Err(UiError::bad_request(format!(
            "`{to}` is not an absolute folder; give one starting with /"
        )));
    }
    Ok(Request {
        found,
        target,
        original: false,
    })
}

fn hidden(app: &App, form: &RestoreForm) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(app.csrf());
        input type="hidden" name="snapshot" value=(form.snapshot);
        input type="hidden" name="path" value=(form.path);
        input type="hidden" name="to" value=(form.to);
    }
}

/// `POST /restore/plan`: what the restore would do, and the button that does it.
pub async fn plan(
    State(app): State<Arc<App>>,
    Form(form): Form<RestoreForm>,
) -> Result<Markup, UiError> {
    blocking(&app, move |app| {
        let request = check(app, &form)?;
        let plan = restore_plan(
            &app.repo,
            &request.found.node,
            &request.rel(),
            &request.options(),
            true,
        )?;
        if !request.original {
            refuse_conflicts(&plan)?;
        }
        let replaced: Vec<_> = plan
            .entries
            .iter()
            .filter(|e| matches!(e.action, PlanAction::Overwrite | PlanAction::Delete))
            .collect();
        let body = html! {
            p { "Restore " a href=(snapshot_href(&request.found.id, &request.found.path)) { code { (request.found.path) } }
                " from snapshot " code { (request.found.id.short()) } " into " code { (request.target.display()) } "." }
            div #plan .box {
                p { (plan.create) " to create, " (plan.overwrite) " to replace (" (bytes(plan.bytes_to_write)) " to write)." }
                @if replaced.is_empty() {
                    p #nothing-replaced { "Nothing that exists is replaced." }
                } @else {
                    p { "These are replaced; a safety snapshot (tag " code { "pre-restore" } ") keeps them first:" }
                    ul #replaced {
                        @for entry in &replaced {
                            li { code { (entry.path.display()) } " (" (entry.kind.as_str()) ", " (bytes(entry.size)) ")" }
                        }
                    }
                }
            }
            form #confirm-form method="post" action="/restore" {
                (hidden(app, &form))
                button #confirm .danger type="submit" { "Restore now" }
                " "
                a href=(snapshot_href(&request.found.id, &request.found.path)) { "Cancel" }
            }
        };
        Ok(page("Restore: confirm", body))
    })
    .await
}

/// `POST /restore`: restores, after the safety snapshot when it replaces anything.
pub async fn run(
    State(app): State<Arc<App>>,
    Form(form): Form<RestoreForm>,
) -> Result<Markup, UiError> {
    blocking(&app, move |app| {
        let request = check(app, &form)?;
        let (rel, options) = (request.rel(), request.options());
        // Between the profile's restore hooks, as `snap restore` runs.
        let env = vec![(
            "SNAP_RESTORE_TARGET".to_string(),
            request.target.display().to_string(),
        )];
        let mut done = None;
        around_in(
            app.profile.as_ref(),
            &app.location,
            Hooked::Restore,
            env,
            |_| {
                let mut prepared = prepare(&app.repo, &request.found.node, &rel, &options)?;
                let safety = prepared.take_safety_snapshot(&snap::NoProgress)?;
                let report = prepared.run(&snap::NoProgress)?;
                let code = if report.damaged.is_empty() { 0 } else { crate::cli::exit::DAMAGED };
                done = Some((safety, report));
                Ok(code)
            },
        )
        .map_err(UiError::from_anyhow)?;
        let Some((safety, report)) = done else {
            return Err(UiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the restore did not run"));
        };
        let body = html! {
            div #restored .box {
                p { "Restored " (report.files) " file" @if report.files != 1 { "s" } " (" (bytes(report.bytes)) ") from snapshot "
                    code { (request.found.id.short()) } " into " code { (request.target.display()) } "." }
                @if let Some(safety) = safety {
                    p { "What it replaced is in the safety snapshot "
                        a #safety-snapshot href=(snapshot_href(&safety, "")) data-id=(safety.to_hex()) { code { (safety.short()) } } "." }
                }
                @for damaged in &report.damaged {
                    p .error { "Not restored, repository data is damaged: " (damaged) " (run `snap check`)." }
                }
                @for warning in &report.warnings {
                    p .error { "Warning: " (warning) }
                }
            }
            p { a href="/" { "Back to the timeline" } }
        };
        Ok(page("Restored", body))
    })
    .await
}
