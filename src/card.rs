//! A chat message as lifeboat means it, before any platform shapes it: a title, an
//! outcome (its colour), facts, a list of steps, paragraphs and fine print, made of pieces
//! that know what they are (a person, a time, a path in a code span). Each platform has one
//! renderer (src/front/slack/render.rs, src/front/discord/render.rs); this module also owns
//! the one place where a card is cut down to a platform's limits (`Card::fitted`).

use chrono::{DateTime, Utc};

/// What the message reports, as a colour: green, amber, red; neutral while nothing is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tone {
    #[default]
    Neutral,
    Good,
    Warning,
    Bad,
}

/// One piece of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// Emphasised words.
    Strong(String),
    /// A path, an id, a command: shown verbatim in a code span.
    Code(String),
    /// Someone by lifeboat identity (`slack:U…`, `discord:…`, `cli:root`). `notify`: the
    /// platform should alert them (the requester of a result), not just name them.
    Person {
        identity: String,
        notify: bool,
    },
    /// A moment, shown in the reader's zone where the platform can; `relative` adds
    /// "in 29 minutes" / "3 hours ago" where the platform keeps it current.
    Time {
        at: DateTime<Utc>,
        relative: bool,
    },
}

/// A run of pieces: one paragraph, fact value, step or context line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Line(pub Vec<Piece>);

impl Line {
    pub fn new() -> Line {
        Line::default()
    }
    pub fn text(mut self, t: impl Into<String>) -> Line {
        self.0.push(Piece::Text(t.into()));
        self
    }
    pub fn strong(mut self, t: impl Into<String>) -> Line {
        self.0.push(Piece::Strong(t.into()));
        self
    }
    pub fn code(mut self, t: impl Into<String>) -> Line {
        self.0.push(Piece::Code(t.into()));
        self
    }
    /// Named, not alerted.
    pub fn person(mut self, identity: impl Into<String>) -> Line {
        self.0.push(Piece::Person {
            identity: identity.into(),
            notify: false,
        });
        self
    }
    /// Named and alerted.
    pub fn notify(mut self, identity: impl Into<String>) -> Line {
        self.0.push(Piece::Person {
            identity: identity.into(),
            notify: true,
        });
        self
    }
    pub fn time(mut self, at: DateTime<Utc>) -> Line {
        self.0.push(Piece::Time {
            at,
            relative: false,
        });
        self
    }
    pub fn time_relative(mut self, at: DateTime<Utc>) -> Line {
        self.0.push(Piece::Time { at, relative: true });
        self
    }
    /// A stored RFC 3339 time; text as written when it is not one.
    pub fn stored_time(self, rfc3339: &str) -> Line {
        match crate::units::parse_time(rfc3339) {
            Some(t) => self.time(t),
            None => self.text(rfc3339),
        }
    }

    /// The line as plain text: identities as lifeboat writes them, times in UTC. What
    /// logs, the CLI and platforms without formatting see.
    pub fn plain(&self) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Text(t) | Piece::Strong(t) => t.clone(),
                Piece::Code(c) => format!("`{c}`"),
                Piece::Person { identity, .. } => identity.clone(),
                Piece::Time { at, .. } => crate::units::utc_text(*at, false),
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Line {
    fn from(t: &str) -> Line {
        Line::new().text(t)
    }
}

impl From<String> for Line {
    fn from(t: String) -> Line {
        Line::new().text(t)
    }
}

/// A labelled fact: "Backup" → `20261205T124620Z`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub label: String,
    pub value: Line,
}

/// A structured message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Card {
    pub tone: Tone,
    /// Plain words, an emoji at most: a header on Slack, an embed title on Discord.
    pub title: String,
    /// Paragraphs under the title.
    pub lead: Vec<Line>,
    pub facts: Vec<Fact>,
    /// An ordered list ("what will happen").
    pub steps: Vec<Line>,
    /// Paragraphs after the facts and steps (problems, warnings, a report's summary).
    pub body: Vec<Line>,
    /// Fine print.
    pub context: Vec<Line>,
}

impl Card {
    pub fn new(tone: Tone, title: impl Into<String>) -> Card {
        Card {
            tone,
            title: title.into(),
            ..Card::default()
        }
    }
    pub fn lead(mut self, line: impl Into<Line>) -> Card {
        self.lead.push(line.into());
        self
    }
    pub fn fact(mut self, label: impl Into<String>, value: impl Into<Line>) -> Card {
        self.facts.push(Fact {
            label: label.into(),
            value: value.into(),
        });
        self
    }
    pub fn step(mut self, line: impl Into<Line>) -> Card {
        self.steps.push(line.into());
        self
    }
    pub fn body(mut self, line: impl Into<Line>) -> Card {
        self.body.push(line.into());
        self
    }
    pub fn context(mut self, line: impl Into<Line>) -> Card {
        self.context.push(line.into());
        self
    }

    /// Every line of the card, in reading order.
    pub fn lines(&self) -> impl Iterator<Item = &Line> {
        self.lead
            .iter()
            .chain(self.facts.iter().map(|f| &f.value))
            .chain(&self.steps)
            .chain(&self.body)
            .chain(&self.context)
    }

    /// The people the platform should alert (each once, in order of appearance).
    pub fn notified(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for piece in self.lines().flat_map(|l| &l.0) {
            if let Piece::Person {
                identity,
                notify: true,
            } = piece
                && !out.contains(identity)
            {
                out.push(identity.clone());
            }
        }
        out
    }

    /// The whole card as plain text (the fallback for notifications, logs, screen readers).
    pub fn plain(&self) -> String {
        let mut out = vec![self.title.clone()];
        out.extend(self.lead.iter().map(Line::plain));
        out.extend(
            self.facts
                .iter()
                .map(|f| format!("{}: {}", f.label, f.value.plain())),
        );
        out.extend(
            self.steps
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{}. {}", i + 1, s.plain())),
        );
        out.extend(self.body.iter().map(Line::plain));
        out.extend(self.context.iter().map(Line::plain));
        out.join("\n")
    }

    /// The card cut down to `limits`, measuring lines as the platform will render them
    /// (`measure`): the title and every line clipped with "…", facts past the most a
    /// platform shows folded into one, steps and paragraphs past the budget summarised as
    /// "… and N more". The one place where messages are made to fit.
    pub fn fitted(&self, limits: &Limits, measure: &dyn Fn(&Line) -> usize) -> Card {
        let mut card = self.clone();
        card.title = clip(&card.title, limits.title);
        card.facts = fit_facts(std::mem::take(&mut card.facts), limits, measure);
        let mut budget = limits.total.saturating_sub(
            card.title.chars().count()
                + card
                    .facts
                    .iter()
                    .map(|f| f.label.chars().count() + measure(&f.value))
                    .sum::<usize>(),
        );
        // The lead, the outcome and the fine print (who approved, when it expires) matter
        // more than the last steps of a long plan: they get the budget first.
        for (list, what) in [
            (&mut card.lead, "paragraph"),
            (&mut card.body, "line"),
            (&mut card.context, "note"),
            (&mut card.steps, "step"),
        ] {
            fit_list(list, what, limits, &mut budget, measure);
        }
        card
    }
}

/// Facts clipped, and kept while they number at most `limits.facts` and take at most
/// half the total; the rest folded into one last fact that names them.
fn fit_facts(facts: Vec<Fact>, limits: &Limits, measure: &dyn Fn(&Line) -> usize) -> Vec<Fact> {
    let cost = |f: &Fact| f.label.chars().count() + measure(&f.value);
    let clipped: Vec<Fact> = facts
        .into_iter()
        .map(|f| Fact {
            label: clip(&f.label, limits.fact_label),
            value: clip_line(&f.value, limits.fact_value, measure),
        })
        .collect();
    // Room for the folded fact itself.
    let room = (limits.total / 2).saturating_sub(limits.fact_value.min(200));
    let mut kept = Vec::new();
    let mut used = 0;
    for (i, f) in clipped.iter().enumerate() {
        let last_slot = i + 1 == limits.facts && clipped.len() > limits.facts;
        if last_slot || used + cost(f) > room {
            let labels: Vec<&str> = clipped[i..].iter().map(|f| f.label.as_str()).collect();
            let value = Line::from(format!(
                "{} not shown: {}",
                crate::units::count(labels.len() as u64, "fact", None),
                labels.join(", ")
            ));
            kept.push(Fact {
                label: "More".into(),
                value: clip_line(&value, limits.fact_value.min(200), measure),
            });
            return kept;
        }
        used += cost(f);
        kept.push(f.clone());
    }
    kept
}

/// How much of a card a platform shows (characters as the platform renders them).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub title: usize,
    pub facts: usize,
    pub fact_label: usize,
    pub fact_value: usize,
    /// One paragraph, step or note.
    pub line: usize,
    /// Lines in one list (paragraphs, steps, body, context) before "… and N more".
    pub lines: usize,
    /// Everything together.
    pub total: usize,
}

/// Keep a list's lines while they fit the per-list and overall budgets; say how many
/// were left out in a last line.
fn fit_list(
    list: &mut Vec<Line>,
    what: &str,
    limits: &Limits,
    budget: &mut usize,
    measure: &dyn Fn(&Line) -> usize,
) {
    // Room kept for the "… and N more" line itself.
    const SUMMARY: usize = 40;
    let all = std::mem::take(list);
    let total = all.len();
    for (i, line) in all.into_iter().enumerate() {
        let line = clip_line(&line, limits.line, measure);
        let cost = measure(&line) + 1;
        let last_slot = i + 1 == limits.lines && total > limits.lines;
        if last_slot || cost + SUMMARY > *budget {
            let left = total - i;
            let summary = Line::from(format!(
                "… and {} (not shown here)",
                crate::units::count(left as u64, &format!("more {what}"), None)
            ));
            *budget = budget.saturating_sub(measure(&summary) + 1);
            list.push(summary);
            return;
        }
        *budget -= cost;
        list.push(line);
    }
}

/// `text` in at most `max` characters, "…" marking a cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A line in at most `max` characters as measured: pieces dropped from the end, the last
/// text or code piece clipped, "…" marking the cut.
fn clip_line(line: &Line, max: usize, measure: &dyn Fn(&Line) -> usize) -> Line {
    if measure(line) <= max {
        return line.clone();
    }
    let mut kept = Line::new();
    for piece in &line.0 {
        let mut trial = kept.clone();
        trial.0.push(piece.clone());
        if measure(&trial) < max {
            kept = trial;
            continue;
        }
        // Whatever room is left goes to as much of this piece's words as fit.
        let room = max.saturating_sub(measure(&kept) + 1);
        let clipped = match piece {
            Piece::Text(t) => Some(Piece::Text(t.chars().take(room).collect())),
            Piece::Strong(t) => Some(Piece::Strong(
                t.chars().take(room.saturating_sub(2)).collect(),
            )),
            Piece::Code(c) => Some(Piece::Code(
                c.chars().take(room.saturating_sub(2)).collect(),
            )),
            _ => None,
        };
        if let Some(p) = clipped {
            let mut trial = kept.clone();
            trial.0.push(p);
            // Markup around the piece may still not fit: shrink until it does.
            while measure(&trial) + 1 > max && shorten(trial.0.last_mut()) {}
            if measure(&trial) < max {
                kept = trial;
            }
        }
        break;
    }
    kept.0.push(Piece::Text("…".into()));
    kept
}

/// Drop the last character of a text-like piece; false when there is nothing to drop.
fn shorten(piece: Option<&mut Piece>) -> bool {
    match piece {
        Some(Piece::Text(t) | Piece::Strong(t) | Piece::Code(t)) => t.pop().is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain_len(l: &Line) -> usize {
        l.plain().chars().count()
    }

    const SMALL: Limits = Limits {
        title: 10,
        facts: 3,
        fact_label: 5,
        fact_value: 12,
        line: 30,
        lines: 4,
        total: 200,
    };

    #[test]
    fn a_card_too_big_is_cut_down_and_says_what_it_left_out() {
        let mut card = Card::new(Tone::Bad, "a title far too long")
            .fact("Target", Line::new().code("x".repeat(50)))
            .lead(Line::new().text("requested by ").person("slack:U1"));
        for i in 0..6 {
            card = card.fact(format!("f{i}"), "v");
        }
        for i in 0..200 {
            card = card.body(format!("timeline entry {i}"));
        }
        let fitted = card.fitted(&SMALL, &plain_len);
        assert_eq!(fitted.title, "a title f…");
        assert_eq!(fitted.facts.len(), 3);
        assert_eq!(fitted.facts[2].label, "More");
        assert!(fitted.facts[2].value.plain().starts_with("5 facts not"));
        // clipped to 12 with markup: the code span keeps what fits and the cut is marked.
        assert!(plain_len(&fitted.facts[0].value) <= 20);
        assert!(fitted.facts[0].value.plain().ends_with('…'));
        assert_eq!(fitted.body.len(), 4);
        assert_eq!(
            fitted.body[3].plain(),
            "… and 197 more lines (not shown here)"
        );
        assert_eq!(fitted.lead, card.lead, "what fits is untouched");
    }

    #[test]
    fn the_total_budget_holds_across_lists() {
        let mut card = Card::new(Tone::Good, "t");
        for i in 0..3 {
            card = card.step(format!("step {i} {}", "x".repeat(10)));
        }
        let limits = Limits {
            total: 60,
            lines: 50,
            ..SMALL
        };
        let fitted = card.fitted(&limits, &plain_len);
        let used: usize = fitted.lines().map(plain_len).sum();
        assert!(used <= 60, "{used}: {fitted:?}");
        assert!(fitted.steps.last().unwrap().plain().starts_with("… and"));
    }

    #[test]
    fn plain_text_names_people_by_identity_and_times_in_utc() {
        let at = crate::units::parse_time("2026-12-05T12:46:20.010Z").unwrap();
        let line = Line::new()
            .text("approved by ")
            .notify("slack:U0ADMIN2")
            .text(" at ")
            .time(at);
        assert_eq!(
            line.plain(),
            "approved by slack:U0ADMIN2 at 2026-12-05 12:46 UTC"
        );
        let card = Card::new(Tone::Good, "t").lead(line.clone()).body(line);
        assert_eq!(card.notified(), vec!["slack:U0ADMIN2".to_string()]);
    }
}

/// The largest realistic message of every kind, for the renderers' limit tests.
#[cfg(test)]
#[path = "card_largest.rs"]
pub(crate) mod largest;
