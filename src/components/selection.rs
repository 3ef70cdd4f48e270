//! Row selection for a paged table: ids chosen one by one (with shift-click
//! ranges), the whole page from the header checkbox, or — once the page is
//! selected — every row that matches the filter. Kept in one signal at the
//! page, so it survives paging and auto refresh.

use leptos::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What is selected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectionState {
    pub ids: BTreeSet<i64>,
    /// Every row that matches the filter (then `ids` is ignored).
    pub all_matching: bool,
    /// The last row clicked without shift: where a shift-click range starts.
    pub anchor: Option<i64>,
}

/// How much of a page is selected (the header checkbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSelected {
    None,
    Some,
    All,
}

impl SelectionState {
    pub fn is_empty(&self) -> bool {
        !self.all_matching && self.ids.is_empty()
    }

    pub fn is_selected(&self, id: i64) -> bool {
        self.all_matching || self.ids.contains(&id)
    }

    /// A click on a row's checkbox. With shift, every row from the anchor to
    /// this one (in page order) takes this row's new state.
    pub fn click(&mut self, id: i64, page: &[i64], shift: bool) {
        if self.all_matching {
            // Back to a choice by ids: the page, less this row.
            self.all_matching = false;
            self.ids = page.iter().copied().filter(|i| *i != id).collect();
            self.anchor = Some(id);
            return;
        }
        let select = !self.ids.contains(&id);
        let range = match (shift, self.anchor) {
            (true, Some(anchor)) => {
                let a = page.iter().position(|i| *i == anchor);
                let b = page.iter().position(|i| *i == id);
                match (a, b) {
                    (Some(a), Some(b)) => Some(&page[a.min(b)..=a.max(b)]),
                    _ => None,
                }
            }
            _ => None,
        };
        for row in range.unwrap_or(std::slice::from_ref(&id)) {
            if select {
                self.ids.insert(*row);
            } else {
                self.ids.remove(row);
            }
        }
        if !shift {
            self.anchor = Some(id);
        }
    }

    /// The header checkbox: selects the page, or clears it when it is all selected.
    pub fn click_page(&mut self, page: &[i64]) {
        if self.page_selected(page) == PageSelected::All {
            if self.all_matching {
                self.clear();
            } else {
                for id in page {
                    self.ids.remove(id);
                }
            }
        } else {
            self.ids.extend(page.iter().copied());
        }
    }

    pub fn page_selected(&self, page: &[i64]) -> PageSelected {
        let n = page.iter().filter(|id| self.is_selected(**id)).count();
        match n {
            0 => PageSelected::None,
            n if n == page.len() => PageSelected::All,
            _ => PageSelected::Some,
        }
    }

    pub fn select_all_matching(&mut self) {
        self.all_matching = true;
        self.ids.clear();
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// The checkbox of one row.
#[component]
pub fn RowCheckbox(
    id: i64,
    selected: RwSignal<SelectionState>,
    /// The ids of the page, top to bottom (for shift-click ranges).
    page: Arc<Vec<i64>>,
    /// What the row is called, for its label: "event 42".
    noun: &'static str,
) -> impl IntoView {
    view! {
        <td class="select-col">
            <input
                type="checkbox"
                aria-label=format!("Select {noun} {id}")
                prop:checked=move || selected.try_with(|s| s.is_selected(id)).unwrap_or(false)
                on:click=move |ev| {
                    let shift = ev.shift_key();
                    selected.try_update(|s| s.click(id, &page, shift));
                }
            />
        </td>
    }
}

/// The header checkbox: checked when the page is selected, mixed when part of it is.
#[component]
pub fn PageCheckbox(selected: RwSignal<SelectionState>, page: Arc<Vec<i64>>) -> impl IntoView {
    let ids = page.clone();
    let state = Signal::derive(move || {
        selected
            .try_with(|s| s.page_selected(&ids))
            .unwrap_or(PageSelected::None)
    });
    view! {
        <th scope="col" class="select-col">
            <input
                type="checkbox"
                aria-label="Select all on this page"
                prop:checked=move || state.get() == PageSelected::All
                prop:indeterminate=move || state.get() == PageSelected::Some
                on:click=move |_| {
                    selected.try_update(|s| s.click_page(&page));
                }
            />
        </th>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: [i64; 5] = [50, 49, 48, 47, 46];

    #[test]
    fn clicks_toggle_and_shift_clicks_take_a_range() {
        let mut s = SelectionState::default();
        s.click(49, &PAGE, false);
        assert!(s.is_selected(49));
        s.click(46, &PAGE, true);
        assert_eq!(s.ids, BTreeSet::from([49, 48, 47, 46]));
        // Shift-click upwards from the same anchor clears that range.
        s.click(50, &PAGE, false);
        s.click(48, &PAGE, false);
        s.click(49, &PAGE, true);
        assert_eq!(s.ids, BTreeSet::from([50, 47, 46]));
        s.click(50, &PAGE, false);
        assert_eq!(s.page_selected(&PAGE), PageSelected::Some);
    }

    #[test]
    fn the_header_selects_and_clears_the_page_and_others_stay() {
        let mut s = SelectionState::default();
        s.ids.insert(7); // on another page
        assert_eq!(s.page_selected(&PAGE), PageSelected::None);
        s.click_page(&PAGE);
        assert_eq!(s.page_selected(&PAGE), PageSelected::All);
        assert_eq!(s.ids.len(), 6);
        s.click_page(&PAGE);
        assert_eq!(s.ids, BTreeSet::from([7]));
    }

    #[test]
    fn all_matching_covers_every_row_until_one_is_unticked() {
        let mut s = SelectionState::default();
        s.click_page(&PAGE);
        s.select_all_matching();
        assert!(s.is_selected(1) && s.ids.is_empty());
        s.click(48, &PAGE, false);
        assert!(!s.all_matching);
        assert_eq!(s.ids, BTreeSet::from([50, 49, 47, 46]));
        s.select_all_matching();
        s.click_page(&PAGE);
        assert!(s.is_empty());
    }
}
