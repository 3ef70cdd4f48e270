//! The Activity Log's filter bar: date range, user, actions, table, IP or
//! CIDR, keyword search. Choices apply at once; typed text on Enter or Apply.

use crate::components::range_picker::{DateRangePicker, RangeValue};
use crate::models::FilterOptions;
use crate::query::{EventQuery, IpFilter, TimeRange};
use leptos::prelude::*;
use leptos_router::components::A;

use super::PATH;

/// The picker's value for a view.
pub fn range_of(q: &EventQuery) -> RangeValue {
    RangeValue::of(&q.times())
}

/// A view with a new range.
pub fn with_range(q: EventQuery, range: RangeValue) -> EventQuery {
    let TimeRange { range, from, to } = range.time_range();
    EventQuery {
        range,
        from,
        to,
        ..q
    }
    .first_page()
}

fn actions_label(actions: &[String]) -> String {
    match actions {
        [] => "Any action".to_string(),
        [one] => one.clone(),
        [a, b] => format!("{a}, {b}"),
        many => format!("{} actions", many.len()),
    }
}

#[component]
pub fn FilterBar(
    current: EventQuery,
    options: FilterOptions,
    go: Callback<EventQuery>,
) -> impl IntoView {
    let base = StoredValue::new(current.clone());
    let initiators = StoredValue::new(options.initiators.clone());
    let user_label = current
        .user
        .as_ref()
        .map(|key| {
            options
                .initiators
                .iter()
                .find(|i| &i.key == key)
                .map(|i| i.label.clone())
                .unwrap_or_else(|| key.to_param())
        })
        .unwrap_or_default();
    let user_text = RwSignal::new(user_label.clone());
    let ip_text = RwSignal::new(current.ip.clone().unwrap_or_default());
    let search_text = RwSignal::new(current.q.clone().unwrap_or_default());
    let error = RwSignal::new(None::<String>);

    let apply = move |change: &dyn Fn(&mut EventQuery)| {
        let mut q = base.get_value();
        change(&mut q);
        go.run(q.first_page());
    };
    // Reads the typed fields; a bad one is reported and nothing changes.
    let submit = move || {
        let user_text = user_text.get_untracked();
        let user = if user_text.trim().is_empty() {
            None
        } else {
            match initiators.with_value(|list| {
                list.iter()
                    .find(|i| i.label == user_text.trim())
                    .map(|i| i.key.clone())
            }) {
                Some(key) => Some(key),
                None => {
                    error.set(Some(format!(
                        "User: no one called \"{}\" appears in the log; pick a name from the list",
                        user_text.trim()
                    )));
                    return;
                }
            }
        };
        let ip = ip_text.get_untracked().trim().to_string();
        if !ip.is_empty() {
            if let Err(e) = IpFilter::parse(&ip) {
                error.set(Some(e.to_string()));
                return;
            }
        }
        let search = search_text.get_untracked().trim().to_string();
        error.set(None);
        apply(&|q| {
            q.user = user.clone();
            q.ip = (!ip.is_empty()).then(|| ip.clone());
            q.q = (!search.is_empty()).then(|| search.clone());
        });
    };
    let selected_actions = current.actions.clone();
    let action_summary = actions_label(&selected_actions);
    let action_boxes = options
        .actions
        .iter()
        .cloned()
        .map(|action| {
            let checked = selected_actions.contains(&action);
            let value = action.clone();
            view! {
                <label class="check">
                    <input
                        type="checkbox"
                        value=action.clone()
                        checked=checked
                        on:change=move |_| {
                            let value = value.clone();
                            apply(&move |q| {
                                if let Some(i) = q.actions.iter().position(|a| *a == value) {
                                    q.actions.remove(i);
                                } else {
                                    q.actions.push(value.clone());
                                }
                            })
                        }
                    />
                    <span>{action}</span>
                </label>
            }
        })
        .collect_view();
    let table = current.table.clone();
    let table_options = options
        .tables
        .iter()
        .map(|t| {
            let selected = table.as_deref() == Some(t.as_str());
            view! { <option value=t.clone() selected=selected>{t.clone()}</option> }
        })
        .collect_view();
    let filtered = current.is_filtered();
    let range = range_of(&current);
    let clear = format!(
        "{PATH}{}",
        EventQuery {
            refresh: current.refresh,
            ..EventQuery::default()
        }
        .to_query_string()
    );

    view! {
        <form
            class="filter-bar card"
            role="search"
            aria-label="Filter events"
            on:submit=move |ev| {
                ev.prevent_default();
                submit();
            }
        >
            <div class="filter-row">
                <DateRangePicker
                    value=Signal::stored(range)
                    on_apply=Callback::new(move |range| {
                        go.run(with_range(base.get_value(), range))
                    })
                />
                <label class="filter user-filter">
                    <span class="filter-label">"User"</span>
                    <input
                        type="search"
                        list="initiator-options"
                        placeholder="Any user"
                        autocomplete="off"
                        value=user_label
                        on:input=move |ev| user_text.set(event_target_value(&ev))
                        on:change=move |_| submit()
                    />
                </label>
                <datalist id="initiator-options">
                    {options
                        .initiators
                        .iter()
                        .map(|i| view! { <option value=i.label.clone()></option> })
                        .collect_view()}
                </datalist>
                <details class="filter multi-select">
                    <summary aria-label=format!("Action: {action_summary}")>
                        <span class="filter-label">"Action"</span>
                        <span class="multi-value">{action_summary.clone()}</span>
                    </summary>
                    <fieldset class="multi-options">
                        <legend class="sr-only">"Action types"</legend>
                        {action_boxes}
                    </fieldset>
                </details>
                <label class="filter">
                    <span class="filter-label">"Table"</span>
                    <select on:change=move |ev| {
                        let value = event_target_value(&ev);
                        apply(&|q| q.table = (!value.is_empty()).then(|| value.clone()))
                    }>
                        <option value="" selected=table.is_none()>"Any table"</option>
                        {table_options}
                    </select>
                </label>
                <label class="filter">
                    <span class="filter-label">"IP or CIDR"</span>
                    <input
                        type="text"
                        placeholder="10.0.0.0/8"
                        spellcheck="false"
                        value=current.ip.clone()
                        on:input=move |ev| ip_text.set(event_target_value(&ev))
                    />
                </label>
                <label class="filter search-filter">
                    <span class="filter-label">"Search"</span>
                    <input
                        type="search"
                        placeholder="Words or \"a phrase\""
                        value=current.q.clone()
                        on:input=move |ev| search_text.set(event_target_value(&ev))
                    />
                </label>
                <div class="filter-actions">
                    <button type="submit" class="button primary">"Apply"</button>
                    {filtered.then(|| view! { <A href=clear attr:class="button">"Clear filters"</A> })}
                </div>
            </div>
            {move || error.get().map(|e| view! { <p class="filter-error" role="alert">{e}</p> })}
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dates::Preset;

    #[test]
    fn ranges_move_between_the_picker_and_the_url() {
        let q = EventQuery::default();
        for range in [
            RangeValue::Any,
            RangeValue::Rolling(Preset::Last24Hours),
            RangeValue::Between(Some(5), Some(9)),
            RangeValue::Between(Some(5), None),
        ] {
            assert_eq!(range_of(&with_range(q.clone(), range)), range);
        }
        assert_eq!(actions_label(&[]), "Any action");
        assert_eq!(
            actions_label(&["A".into(), "B".into(), "C".into()]),
            "3 actions"
        );
    }
}
