//! The one place a `ChatMessage` becomes Slack Block Kit: a header, sections (the facts as
//! fields, the steps as a numbered list), a context line for the fine print, buttons (a
//! `confirm` dialog where the button asks one), and the plain `text` fallback that
//! notifications and screen readers use. People become `<@U…>` mentions, times
//! `<!date^…|… UTC>`; everything is cut to Slack's limits by `Card::fitted`.

use slack_morphism::prelude::*;

use crate::card::{Card, Limits, Line, Piece};
use crate::notify::{Button, ChatMessage};

/// Slack's documented limits (https://docs.slack.dev/reference/block-kit/blocks).
pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_TEXT: usize = 3000;
pub const MAX_FIELD_TEXT: usize = 2000;
pub const MAX_FIELDS: usize = 10;
pub const MAX_HEADER: usize = 150;
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
#[cfg(test)]
pub const MAX_MESSAGE_TEXT: usize = 40_000;
/// What lifeboat puts in `text` at most: Slack shows the blocks; `text` is the
/// notification and the screen reader's words.
const FALLBACK_TEXT: usize = 3000;

/// How much of a card Slack gets. With sections packed to `MAX_SECTION_TEXT`, these keep
/// a message well inside 50 blocks and 40,000 characters.
const LIMITS: Limits = Limits {
    title: MAX_HEADER,
    facts: 2 * MAX_FIELDS,
    fact_label: 60,
    fact_value: MAX_FIELD_TEXT - 70,
    line: MAX_SECTION_TEXT - 100,
    lines: 60,
    total: 15_000,
};

/// The message as Slack's `chat.postMessage` / `chat.update` content.
pub fn content(msg: &ChatMessage) -> SlackMessageContent {
    let mut blocks = match &msg.card {
        Some(card) => card_blocks(&card.fitted(&LIMITS, &measure)),
        None => text_sections(&msg.text),
    };
    if !msg.buttons.is_empty() {
        let elements = msg.buttons.iter().map(button).collect();
        blocks.push(SlackBlock::Actions(SlackActionsBlock {
            block_id: None,
            elements,
        }));
    }
    blocks.truncate(MAX_BLOCKS);
    let text = match &msg.card {
        // A card whose plain text was written apart from it (an alert: the watchdog's
        // own words) keeps that text as its notification.
        Some(card) if msg.text == card.plain() => fallback(card),
        _ => msg.text.clone(),
    };
    SlackMessageContent::new()
        .with_text(clip_fallback(&text, FALLBACK_TEXT))
        .with_blocks(blocks)
}

/// `text` in at most `max` characters without cutting through a `<…>` code (a mention,
/// a date, a link): one that does not fit is left out whole, so the notification never
/// shows half a code.
pub(crate) fn clip_fallback(text: &str, max: usize) -> String {
    let clipped = crate::card::clip(text, max);
    if clipped == text {
        return clipped;
    }
    let body = clipped.strip_suffix('…').unwrap_or(&clipped);
    match (body.rfind('<'), body.rfind('>')) {
        (Some(open), close) if close.is_none_or(|c| c < open) => format!("{}…", &body[..open]),
        _ => clipped,
    }
}

/// A line in Slack's mrkdwn.
pub fn mrkdwn(line: &Line) -> String {
    line.0
        .iter()
        .map(|p| match p {
            Piece::Text(t) => escape(t),
            Piece::Strong(t) => format!("*{}*", escape(t)),
            Piece::Code(c) => code(c),
            Piece::Person { identity, .. } => match identity.strip_prefix("slack:") {
                Some(user) => format!("<@{user}>"),
                // Someone from elsewhere (the CLI, Discord): named as lifeboat knows them.
                None => code(identity),
            },
            Piece::Time { at, .. } => format!(
                "<!date^{}^{{date_short_pretty}} at {{time}}|{}>",
                at.timestamp(),
                crate::units::utc_text(*at, false)
            ),
        })
        .collect()
}

fn measure(line: &Line) -> usize {
    mrkdwn(line).chars().count()
}

/// Slack reads `&`, `<` and `>` as markup; in words they are escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A code span; a backquote inside would end it early.
fn code(text: &str) -> String {
    format!("`{}`", escape(&text.replace('`', "'")))
}

fn card_blocks(card: &Card) -> Vec<SlackBlock> {
    let mut blocks = vec![SlackBlock::Header(SlackHeaderBlock {
        block_id: None,
        text: SlackBlockPlainText {
            text: card.title.clone(),
            emoji: Some(true),
        }
        .into(),
        level: None,
    })];
    let lead: Vec<String> = card.lead.iter().map(mrkdwn).collect();
    blocks.extend(sections(&lead));
    for chunk in card.facts.chunks(MAX_FIELDS) {
        let fields = chunk
            .iter()
            .map(|f| md(format!("*{}*\n{}", escape(&f.label), mrkdwn(&f.value))))
            .collect();
        blocks.push(SlackBlock::Section(SlackSectionBlock {
            block_id: None,
            text: None,
            fields: Some(fields),
            accessory: None,
            expand: None,
        }));
    }
    let steps: Vec<String> = card
        .steps
        .iter()
        .enumerate()
        // A summary line ("… and 3 more") is not itself a step.
        .map(|(i, s)| match s.0.first() {
            Some(Piece::Text(t)) if t.starts_with('…') => mrkdwn(s),
            _ => format!("{}. {}", i + 1, mrkdwn(s)),
        })
        .collect();
    blocks.extend(sections(&steps));
    let body: Vec<String> = card.body.iter().map(mrkdwn).collect();
    blocks.extend(sections(&body));
    if !card.context.is_empty() {
        let lines: Vec<String> = card.context.iter().map(mrkdwn).collect();
        let per = lines.len().div_ceil(MAX_CONTEXT_ELEMENTS);
        let elements = lines
            .chunks(per)
            .map(|c| SlackContextBlockElement::MarkDown(markdown(c.join("\n"))))
            .collect();
        blocks.push(SlackBlock::Context(SlackContextBlock {
            block_id: None,
            elements,
        }));
    }
    blocks
}

/// Lines packed into as few sections as hold them (each at most `MAX_SECTION_TEXT`).
fn sections(lines: &[String]) -> Vec<SlackBlock> {
    let mut texts: Vec<String> = Vec::new();
    for line in lines {
        let line = crate::card::clip(line, MAX_SECTION_TEXT);
        match texts.last_mut() {
            Some(last) if last.chars().count() + 1 + line.chars().count() <= MAX_SECTION_TEXT => {
                last.push('\n');
                last.push_str(&line);
            }
            _ => texts.push(line),
        }
    }
    texts
        .into_iter()
        .map(|t| {
            SlackBlock::Section(SlackSectionBlock {
                block_id: None,
                text: Some(md(t)),
                fields: None,
                accessory: None,
                expand: None,
            })
        })
        .collect()
}

/// A plain message (no card): its text in sections, split at lines, and cut (saying so)
/// where it would pass the card budget.
fn text_sections(text: &str) -> Vec<SlackBlock> {
    let parts = crate::notify::split_message(text, MAX_SECTION_TEXT - 100);
    let mut lines: Vec<String> = Vec::new();
    let mut used = 0;
    for (i, part) in parts.iter().enumerate() {
        let part = part.trim_end_matches('\n');
        used += part.chars().count();
        if used > LIMITS.total {
            let left: usize = parts[i..].iter().map(|p| p.chars().count()).sum();
            lines.push(format!(
                "… and {} (not shown here)",
                crate::units::count(left as u64, "more character", None)
            ));
            break;
        }
        if !part.is_empty() {
            lines.push(part.to_string());
        }
    }
    sections(&lines)
}

fn markdown(text: String) -> SlackBlockMarkDownText {
    SlackBlockMarkDownText {
        text,
        verbatim: None,
    }
}

fn md(text: String) -> SlackBlockText {
    SlackBlockText::MarkDown(markdown(text))
}

fn plain(text: &str, max: usize) -> SlackBlockPlainTextOnly {
    SlackBlockPlainText {
        text: crate::card::clip(text, max),
        emoji: Some(true),
    }
    .into()
}

fn button(b: &Button) -> SlackActionBlockElement {
    SlackActionBlockElement::Button(SlackBlockButtonElement {
        action_id: Some(SlackActionId(b.action.clone())),
        text: plain(&b.label, 75),
        url: None,
        value: Some(b.value.clone()),
        style: Some(if b.danger {
            SlackBlockButtonStyle::Danger
        } else {
            SlackBlockButtonStyle::Primary
        }),
        // Slack's own dialog: the click is sent only after "yes".
        confirm: b.confirm.as_ref().map(|c| SlackBlockConfirmItem {
            title: plain(&c.title, 100),
            text: SlackBlockText::Plain(SlackBlockPlainText {
                text: crate::card::clip(&c.text, 300),
                emoji: Some(true),
            }),
            confirm: plain(&c.yes, 30),
            deny: plain(&c.no, 30),
            style: Some("danger".into()),
        }),
        accessibility_label: None,
    })
}

/// The card as one mrkdwn text: what a notification shows and a screen reader reads.
fn fallback(card: &Card) -> String {
    let mut out = vec![escape(&card.title)];
    out.extend(card.lead.iter().map(mrkdwn));
    out.extend(
        card.facts
            .iter()
            .map(|f| format!("{}: {}", escape(&f.label), mrkdwn(&f.value))),
    );
    out.extend(card.body.iter().map(mrkdwn));
    out.extend(card.context.iter().map(mrkdwn));
    out.join("\n")
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
