//! The one place a `ChatMessage` becomes a Discord message: an embed (title, description
//! with the lead, steps, paragraphs and the fine print as subtext, fields for the facts, a
//! colour by outcome), a short `content` that names the people to alert, `allowed_mentions`
//! limited to exactly those people, and buttons (Approve on an in-place restore first asks
//! with an ephemeral Confirm/Cancel). People become `<@id>`, times `<t:…:f>`; everything is
//! cut to Discord's limits by `Card::fitted`.

use serenity::all::{
    ButtonStyle, Colour, CreateActionRow, CreateAllowedMentions, CreateButton, CreateEmbed,
    CreateMessage, EditMessage, UserId,
};

use crate::card::{Card, Limits, Line, Piece, Tone};
use crate::notify::{ChatMessage, Confirm};

/// Discord's documented limits (https://discord.com/developers/docs/resources/message).
pub const MAX_CONTENT: usize = 2000;
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1024;
#[cfg(test)]
pub const MAX_EMBED_TOTAL: usize = 6000;

/// How much of a card Discord gets: the lines (all in the description) and facts share a
/// budget that keeps the description under 4,096 and the embed under 6,000 characters
/// with room for the title and list numbers.
const LIMITS: Limits = Limits {
    title: MAX_TITLE,
    facts: MAX_FIELDS,
    fact_label: 100,
    fact_value: MAX_FIELD_VALUE,
    line: 1000,
    lines: 40,
    total: 3600,
};

/// A button that asks before it acts carries this before its action: the click answers
/// with the question (only the clicker sees it) and the real button.
pub const ASK: &str = "ask_";

/// The message as a new post.
pub fn post(msg: &ChatMessage) -> CreateMessage {
    let (content, embeds, mentions) = parts(msg);
    CreateMessage::new()
        .content(content)
        .embeds(embeds)
        .allowed_mentions(mentions)
        .components(components(msg))
}

/// The message as an edit of a posted one (every part replaced, an embed removed when
/// the new content has none).
pub fn edit(msg: &ChatMessage) -> EditMessage {
    let (content, embeds, mentions) = parts(msg);
    EditMessage::new()
        .content(content)
        .embeds(embeds)
        .allowed_mentions(mentions)
        .components(components(msg))
}

/// A line in Discord's markdown.
pub fn markdown(line: &Line) -> String {
    line.0
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.clone(),
            Piece::Strong(t) => format!("**{t}**"),
            Piece::Code(c) => format!("`{}`", c.replace('`', "'")),
            Piece::Person { identity, .. } => match discord_user(identity) {
                Some(id) => format!("<@{id}>"),
                None => format!("`{identity}`"),
            },
            Piece::Time { at, relative } => {
                let t = at.timestamp();
                if *relative {
                    format!("<t:{t}:f> (<t:{t}:R>)")
                } else {
                    format!("<t:{t}:f>")
                }
            }
        })
        .collect()
}

/// The Discord user id of a lifeboat identity (`discord:<snowflake>`).
fn discord_user(identity: &str) -> Option<u64> {
    identity.strip_prefix("discord:")?.parse().ok()
}

fn measure(line: &Line) -> usize {
    markdown(line).chars().count()
}

/// Content, embeds and who may be pinged.
fn parts(msg: &ChatMessage) -> (String, Vec<CreateEmbed>, CreateAllowedMentions) {
    let Some(card) = &msg.card else {
        // Plain text pings nobody: the words may quote a user's input.
        let content = crate::card::clip(&msg.text, MAX_CONTENT);
        return (content, Vec::new(), CreateAllowedMentions::new());
    };
    let card = card.fitted(&LIMITS, &measure);
    let notified: Vec<u64> = card
        .notified()
        .iter()
        .filter_map(|who| discord_user(who))
        .collect();
    // The title, and the people to alert: a mention pings only in content or when
    // allowed; these are the people the message is for.
    let mut content = crate::card::clip(&card.title, 200);
    for id in &notified {
        content.push_str(&format!(" <@{id}>"));
    }
    let mentions = CreateAllowedMentions::new().users(notified.into_iter().map(UserId::new));
    (
        crate::card::clip(&content, MAX_CONTENT),
        vec![embed(&card)],
        mentions,
    )
}

fn embed(card: &Card) -> CreateEmbed {
    let mut description: Vec<String> = card.lead.iter().map(markdown).collect();
    description.extend(
        card.steps
            .iter()
            .enumerate()
            .map(|(i, s)| match s.0.first() {
                // A summary line ("… and 3 more") is not itself a step.
                Some(Piece::Text(t)) if t.starts_with('…') => markdown(s),
                _ => format!("{}. {}", i + 1, markdown(s)),
            }),
    );
    description.extend(card.body.iter().map(markdown));
    // The fine print as Discord's small grey subtext: a footer would show mentions and
    // times as raw `<@…>` / `<t:…>`, the description renders them.
    description.extend(card.context.iter().map(|l| format!("-# {}", markdown(l))));
    let mut embed = CreateEmbed::new()
        .title(card.title.clone())
        .colour(colour(card.tone));
    // An empty description is left out rather than sent as "".
    if !description.is_empty() {
        embed = embed.description(crate::card::clip(&description.join("\n"), MAX_DESCRIPTION));
    }
    for f in &card.facts {
        embed = embed.field(
            crate::card::clip(&f.label, MAX_FIELD_NAME),
            crate::card::clip(&markdown(&f.value), MAX_FIELD_VALUE),
            true,
        );
    }
    embed
}

/// Green, amber, red by outcome; Discord's blurple while nothing is decided.
fn colour(tone: Tone) -> Colour {
    Colour::new(match tone {
        Tone::Good => 0x2EB67D,
        Tone::Warning => 0xECB22E,
        Tone::Bad => 0xE01E5A,
        Tone::Neutral => 0x5865F2,
    })
}

fn components(msg: &ChatMessage) -> Vec<CreateActionRow> {
    if msg.buttons.is_empty() {
        return Vec::new();
    }
    let buttons = msg
        .buttons
        .iter()
        .map(|b| {
            let ask = if b.confirm.is_some() { ASK } else { "" };
            CreateButton::new(format!("{ask}{}:{}", b.action, b.value))
                .label(crate::card::clip(&b.label, 80))
                .style(if b.danger {
                    ButtonStyle::Danger
                } else {
                    ButtonStyle::Success
                })
        })
        .collect();
    vec![CreateActionRow::Buttons(buttons)]
}

/// The question an asking button gets, only the clicker sees it: what the click does,
/// then the real button (`action:value`) and Cancel.
pub fn ask(confirm: &Confirm, action: &str, value: &str) -> serde_json::Value {
    let content = crate::card::clip(
        &format!("**{}**\n{}", confirm.title, confirm.text),
        MAX_CONTENT,
    );
    let row = CreateActionRow::Buttons(vec![
        CreateButton::new(format!("{action}:{value}"))
            .label(crate::card::clip(&confirm.yes, 80))
            .style(ButtonStyle::Danger),
        CreateButton::new(format!("cancel:{value}"))
            .label(crate::card::clip(&confirm.no, 80))
            .style(ButtonStyle::Secondary),
    ]);
    serde_json::json!({
        "type": 4,
        "data": {
            "content": content,
            "flags": super::EPHEMERAL,
            "components": [row],
            "allowed_mentions": {"parse": []}
        }
    })
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
