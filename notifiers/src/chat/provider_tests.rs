//! Every chat provider against a local receiver ([`super::receiver`]) that checks the
//! documented request shape and signature and answers 429 + `Retry-After`, 500, slowly, or
//! 200 with an error code. Signatures are checked against known-answer vectors computed
//! independently with Python's `hmac`/`hashlib`/`base64` (the command is next to each).

use std::time::Duration;

use herald_core::{DeliveryOutcome, Notification, Timestamp};

use super::dingtalk::DingTalkConfig;
use super::discord::DiscordConfig;
use super::feishu::FeishuConfig;
use super::googlechat::GoogleChatConfig;
use super::mattermost::MattermostConfig;
use super::receiver::{Receiver, Reply};
use super::slack::SlackConfig;
use super::teams::TeamsConfig;
use super::telegram::TelegramConfig;
use super::wecom::WeComConfig;
use super::{HttpChannel, ProviderConfig};
use crate::channel::{Channel, ChannelKind};
use crate::testutil::notification;

fn cfg<C: serde::de::DeserializeOwned>(yaml: &str) -> C {
    serde_saphyr::from_str(yaml).unwrap()
}

fn channel<C: ProviderConfig>(c: &C) -> HttpChannel<C::Provider> {
    HttpChannel::new("chat", c).unwrap()
}

fn now() -> Timestamp {
    // 2023-11-14T22:13:20.123Z
    Timestamp::from_millisecond(1_700_000_000_123).unwrap()
}

fn note() -> Notification {
    let mut n = notification("chat");
    n.message.title = "[CRITICAL] [prod] NodeNotReady: Node node-b is NotReady".into();
    n.message.body =
        "**Node node-b is NotReady**\n- Cluster: `prod`\n\"quotes\" and } braces".into();
    n
}

fn ok() -> Reply {
    Reply::new(200, "ok")
}

/// The outcome must not mention any of `secrets`, nor must the channel's Debug.
fn assert_no_secret<P: super::Provider>(
    ch: &HttpChannel<P>,
    outcome: &DeliveryOutcome,
    secrets: &[&str],
) {
    let text = format!("{outcome:?} {ch:?}");
    for s in secrets {
        assert!(!text.contains(s), "{s:?} leaked in {text}");
    }
}

#[tokio::test]
async fn slack_block_kit_with_text_fallback_and_retry_after() {
    let rx = Receiver::start(
        vec![
            Reply::new(429, "rate_limited").header("retry-after", "7"),
            Reply::new(500, "oops"),
            Reply::new(404, "channel_not_found (hook XXXXsecretXXXXsecretXXXX)"),
        ],
        ok(),
    )
    .await;
    let url = format!("{}/services/T000/B000/XXXXsecretXXXXsecretXXXX", rx.base);
    let ch = channel(&cfg::<SlackConfig>(&format!("url: {{ value: '{url}' }}")));
    assert_eq!(ch.kind(), ChannelKind::Slack);
    assert_eq!(ch.template_kind(), "slack");
    let n = note();

    let o = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(
            o,
            DeliveryOutcome::Failed {
                retry_after_secs: Some(7),
                ..
            }
        ),
        "{o:?}"
    );
    assert!(matches!(
        ch.attempt_at(&n, now()).await,
        DeliveryOutcome::Failed {
            retry_after_secs: None,
            ..
        }
    ));
    let dead = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(&dead, DeliveryOutcome::Dead { error } if error.contains("channel_not_found")),
        "{dead:?}"
    );
    assert_no_secret(&ch, &dead, &["XXXXsecretXXXXsecretXXXX"]);
    assert_eq!(
        ch.attempt_at(&n, now()).await,
        DeliveryOutcome::Delivered { status: Some(200) }
    );

    let seen = rx.seen();
    assert_eq!(seen.len(), 4);
    let r = &seen[3];
    assert_eq!(r.method, axum::http::Method::POST);
    assert_eq!(r.path, "/services/T000/B000/XXXXsecretXXXXsecretXXXX");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("idempotency-key"), Some(n.id.clone()));
    let b = r.json();
    assert_eq!(b["text"], n.message.title);
    assert_eq!(b["blocks"][0]["type"], "header");
    assert_eq!(b["blocks"][0]["text"]["type"], "plain_text");
    assert_eq!(b["blocks"][1]["type"], "section");
    assert_eq!(b["blocks"][1]["text"]["type"], "mrkdwn");
    assert_eq!(b["blocks"][1]["text"]["text"], n.message.body);
}

#[tokio::test]
async fn slack_cuts_a_long_body_with_a_note() {
    let rx = Receiver::start(vec![], ok()).await;
    let ch = channel(&cfg::<SlackConfig>(&format!(
        "url: {{ value: '{}/h' }}",
        rx.base
    )));
    let mut n = note();
    n.message.body = (0..1000)
        .map(|i| format!("- pod-{i}"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(ch.attempt_at(&n, now()).await.is_delivered());
    let text = rx.seen()[0].json()["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.chars().count() <= super::slack::MAX_SECTION);
    assert!(text.ends_with("more lines left out"), "{text}");
}

#[tokio::test]
async fn teams_adaptive_card() {
    let rx = Receiver::start(
        vec![
            Reply::new(429, "").header("retry-after", "4"),
            Reply::new(400, "bad sig S1GSECRET"),
            Reply::new(202, ""),
        ],
        ok(),
    )
    .await;
    let url = format!(
        "{}/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=S1GSECRET",
        rx.base
    );
    let ch = channel(&cfg::<TeamsConfig>(&format!("url: {{ value: '{url}' }}")));
    let n = note();
    let o = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(
            o,
            DeliveryOutcome::Failed {
                retry_after_secs: Some(4),
                ..
            }
        ),
        "{o:?}"
    );
    let dead = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(&dead, DeliveryOutcome::Dead { error } if error.contains("[redacted]")),
        "{dead:?}"
    );
    assert_no_secret(&ch, &dead, &["S1GSECRET"]);
    assert_eq!(
        ch.attempt_at(&n, now()).await,
        DeliveryOutcome::Delivered { status: Some(202) }
    );
    let r = &rx.seen()[2];
    assert_eq!(r.query_param("sig").as_deref(), Some("S1GSECRET"));
    let b = r.json();
    assert_eq!(b["type"], "message");
    let a = &b["attachments"][0];
    assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
    assert!(a["contentUrl"].is_null());
    let card = &a["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert_eq!(card["body"][0]["type"], "TextBlock");
    assert_eq!(card["body"][0]["text"], n.message.title);
    assert_eq!(card["body"][0]["color"], "Attention");
    assert_eq!(card["body"][1]["text"], n.message.body);
    assert_eq!(card["body"][1]["wrap"], true);
}

#[tokio::test]
async fn discord_embed_and_json_retry_after() {
    let rx = Receiver::start(
        vec![
            // retry_after in the body only (float seconds): rounded up.
            Reply::new(
                429,
                r#"{"message":"You are being rate limited.","retry_after":1.25,"global":false}"#,
            ),
            // Both: the header wins.
            Reply::new(
                429,
                r#"{"message":"You are being rate limited.","retry_after":64.0,"global":false}"#,
            )
            .header("retry-after", "3"),
            Reply::new(204, ""),
        ],
        ok(),
    )
    .await;
    let url = format!("{}/api/webhooks/123/T0KEN-d1sc0rd", rx.base);
    let ch = channel(&cfg::<DiscordConfig>(&format!(
        "url: {{ value: '{url}' }}\nusername: kube-herald"
    )));
    let n = note();
    let o = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(
            o,
            DeliveryOutcome::Failed {
                retry_after_secs: Some(2),
                ..
            }
        ),
        "{o:?}"
    );
    let o = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(
            o,
            DeliveryOutcome::Failed {
                retry_after_secs: Some(3),
                ..
            }
        ),
        "{o:?}"
    );
    assert_eq!(
        ch.attempt_at(&n, now()).await,
        DeliveryOutcome::Delivered { status: Some(204) }
    );
    assert_no_secret(&ch, &o, &["T0KEN-d1sc0rd"]);
    let r = &rx.seen()[2];
    assert_eq!(r.path, "/api/webhooks/123/T0KEN-d1sc0rd");
    assert_eq!(r.query_param("wait").as_deref(), Some("true"));
    let b = r.json();
    assert_eq!(b["username"], "kube-herald");
    assert_eq!(b["allowed_mentions"]["parse"], serde_json::json!([]));
    assert_eq!(b["embeds"][0]["title"], n.message.title);
    assert_eq!(b["embeds"][0]["description"], n.message.body);
    assert_eq!(b["embeds"][0]["color"], 0xd7_3a_49);
}

#[tokio::test]
async fn telegram_send_message_and_parameters_retry_after() {
    let rx = Receiver::start(
        vec![
            Reply::new(
                429,
                r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 35","parameters":{"retry_after":35}}"#,
            ),
            Reply::new(400, r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#),
            Reply::new(502, "Bad Gateway"),
        ],
        Reply::new(200, r#"{"ok":true,"result":{"message_id":1}}"#),
    )
    .await;
    let token = "123456:AAF-t3l3gram-T0KEN";
    let ch = channel(&cfg::<TelegramConfig>(&format!(
        "bot_token: {{ value: '{token}' }}\nchat_id: '-1001234567890'\napi_url: {}",
        rx.base
    )));
    let n = note();
    let o = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(
            o,
            DeliveryOutcome::Failed {
                retry_after_secs: Some(35),
                ..
            }
        ),
        "{o:?}"
    );
    let dead = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(&dead, DeliveryOutcome::Dead { error } if error.contains("chat not found")),
        "{dead:?}"
    );
    assert!(matches!(
        ch.attempt_at(&n, now()).await,
        DeliveryOutcome::Failed { .. }
    ));
    assert!(ch.attempt_at(&n, now()).await.is_delivered());
    assert_no_secret(&ch, &dead, &[token, "t3l3gram"]);
    let r = &rx.seen()[3];
    assert_eq!(r.path, format!("/bot{token}/sendMessage"));
    let b = r.json();
    assert_eq!(b["chat_id"], -1_001_234_567_890_i64);
    assert_eq!(
        b["text"],
        format!("{}\n\n{}", n.message.title, n.message.body)
    );
    assert!(b.get("parse_mode").is_none());
    assert_eq!(b["link_preview_options"]["is_disabled"], true);
}

#[tokio::test]
async fn dingtalk_signed_markdown_and_errcodes_in_200() {
    let rx = Receiver::start(
        vec![
            Reply::new(
                200,
                r#"{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}"#,
            ),
            Reply::new(200, r#"{"errcode":310000,"errmsg":"sign not match"}"#),
        ],
        Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#),
    )
    .await;
    let secret = "SECd1ngt4lk-test-secret";
    let ch = channel(&cfg::<DingTalkConfig>(&format!(
        "url: {{ value: '{}/robot/send?access_token=d1ngT0KEN' }}\nsecret: {{ value: '{secret}' }}\nat_mobiles: ['13800000000']",
        rx.base
    )));
    let n = note();
    let o = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(&o, DeliveryOutcome::Failed { retry_after_secs: Some(600), error } if error.contains("130101")),
        "{o:?}"
    );
    let dead = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(&dead, DeliveryOutcome::Dead { error } if error.contains("310000")),
        "{dead:?}"
    );
    assert_eq!(
        ch.attempt_at(&n, now()).await,
        DeliveryOutcome::Delivered { status: Some(200) }
    );
    assert_no_secret(&ch, &dead, &[secret, "d1ngT0KEN"]);

    let r = &rx.seen()[2];
    assert_eq!(r.path, "/robot/send");
    // python3 -c 'import hmac,hashlib,base64,urllib.parse; s="SECd1ngt4lk-test-secret"; ts=1700000000123;
    //   sig=base64.b64encode(hmac.new(s.encode(),f"{ts}\n{s}".encode(),hashlib.sha256).digest()).decode();
    //   print(sig, urllib.parse.quote_plus(sig))'
    assert!(
        r.query.ends_with(
            "&timestamp=1700000000123&sign=gnnergOM%2BgEbuJqM9mMDMCD07FhJHafXl1dJUUHm9RA%3D"
        ),
        "{}",
        r.query
    );
    assert_eq!(r.query_param("access_token").as_deref(), Some("d1ngT0KEN"));
    let b = r.json();
    assert_eq!(b["msgtype"], "markdown");
    assert_eq!(b["markdown"]["title"], n.message.title);
    assert_eq!(
        b["markdown"]["text"],
        format!("#### {}\n\n{}", n.message.title, n.message.body)
    );
    assert_eq!(b["at"]["atMobiles"][0], "13800000000");
    assert_eq!(b["at"]["isAtAll"], false);
}

#[tokio::test]
async fn dingtalk_unsigned_has_no_sign() {
    let rx = Receiver::start(vec![], Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#)).await;
    let ch = channel(&cfg::<DingTalkConfig>(&format!(
        "url: {{ value: '{}/robot/send?access_token=t' }}",
        rx.base
    )));
    assert!(ch.attempt_at(&note(), now()).await.is_delivered());
    assert_eq!(rx.seen()[0].query, "access_token=t");
}

#[tokio::test]
async fn wecom_markdown_and_45009() {
    let rx = Receiver::start(
        vec![
            Reply::new(200, r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#),
            Reply::new(200, r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#),
        ],
        Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#),
    )
    .await;
    let ch = channel(&cfg::<WeComConfig>(&format!(
        "url: {{ value: '{}/cgi-bin/webhook/send?key=w3c0m-KEY' }}",
        rx.base
    )));
    let mut n = note();
    let o = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(
            o,
            DeliveryOutcome::Failed {
                retry_after_secs: Some(60),
                ..
            }
        ),
        "{o:?}"
    );
    let dead = ch.attempt_at(&n, now()).await;
    assert!(matches!(&dead, DeliveryOutcome::Dead { error } if error.contains("93000")));
    assert_no_secret(&ch, &dead, &["w3c0m-KEY"]);
    n.message.body = "告警 line\n".repeat(1000);
    assert!(ch.attempt_at(&n, now()).await.is_delivered());
    let r = &rx.seen()[2];
    assert_eq!(r.query_param("key").as_deref(), Some("w3c0m-KEY"));
    let b = r.json();
    assert_eq!(b["msgtype"], "markdown");
    let content = b["markdown"]["content"].as_str().unwrap();
    assert!(content.len() <= 4096, "{}", content.len());
    assert!(content.starts_with(&format!("**{}**\n告警 line", n.message.title)));
    assert!(content.ends_with("more lines left out"));
}

#[tokio::test]
async fn feishu_signed_text_and_codes() {
    let rx = Receiver::start(
        vec![
            Reply::new(200, r#"{"code":11232,"msg":"frequency limited","data":{}}"#),
            Reply::new(200, r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time","data":{}}"#),
        ],
        Reply::new(200, r#"{"code":0,"msg":"success","data":{}}"#),
    )
    .await;
    let secret = "fe1shu-test-secret";
    let ch = channel(&cfg::<FeishuConfig>(&format!(
        "url: {{ value: '{}/open-apis/bot/v2/hook/f3ishu-TOKEN' }}\nsecret: {{ value: '{secret}' }}",
        rx.base
    )));
    let n = note();
    let o = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(
            o,
            DeliveryOutcome::Failed {
                retry_after_secs: Some(_),
                ..
            }
        ),
        "{o:?}"
    );
    let dead = ch.attempt_at(&n, now()).await;
    assert!(matches!(&dead, DeliveryOutcome::Dead { error } if error.contains("19021")));
    assert!(ch.attempt_at(&n, now()).await.is_delivered());
    assert_no_secret(&ch, &dead, &[secret, "f3ishu-TOKEN"]);
    let r = &rx.seen()[2];
    assert_eq!(r.path, "/open-apis/bot/v2/hook/f3ishu-TOKEN");
    let b = r.json();
    assert_eq!(b["timestamp"], "1700000000");
    // python3 -c 'import hmac,hashlib,base64; s="fe1shu-test-secret"; ts=1700000000;
    //   print(base64.b64encode(hmac.new(f"{ts}\n{s}".encode(),b"",hashlib.sha256).digest()).decode())'
    assert_eq!(b["sign"], "Te4ZW7WYfiWbhrZaVoGh5ad2JzYQQWzMhIelO465swo=");
    assert_eq!(b["msg_type"], "text");
    assert_eq!(
        b["content"]["text"],
        format!("{}\n\n{}", n.message.title, n.message.body)
    );
}

#[tokio::test]
async fn google_chat_and_mattermost() {
    let rx = Receiver::start(vec![Reply::new(429, "{}").header("retry-after", "2")], ok()).await;
    let g = channel(&cfg::<GoogleChatConfig>(&format!(
        "url: {{ value: '{}/v1/spaces/AAA/messages?key=gKEY&token=gT0KEN' }}",
        rx.base
    )));
    let n = note();
    assert!(matches!(
        g.attempt_at(&n, now()).await,
        DeliveryOutcome::Failed {
            retry_after_secs: Some(2),
            ..
        }
    ));
    assert!(g.attempt_at(&n, now()).await.is_delivered());
    let r = &rx.seen()[1];
    assert_eq!(r.path, "/v1/spaces/AAA/messages");
    assert_eq!(r.query_param("token").as_deref(), Some("gT0KEN"));
    assert_eq!(
        r.json()["text"],
        format!("*{}*\n{}", n.message.title, n.message.body)
    );

    let m = channel(&cfg::<MattermostConfig>(&format!(
        "url: {{ value: '{}/hooks/mm-KEY' }}\nchannel: ops\nusername: herald",
        rx.base
    )));
    let o = m.attempt_at(&n, now()).await;
    assert!(o.is_delivered());
    assert_no_secret(&m, &o, &["mm-KEY"]);
    let r = &rx.seen()[2];
    assert_eq!(r.path, "/hooks/mm-KEY");
    let b = r.json();
    assert_eq!(
        b["text"],
        format!("#### {}\n{}", n.message.title, n.message.body)
    );
    assert_eq!(b["channel"], "ops");
    assert_eq!(b["username"], "herald");
}

#[tokio::test]
async fn a_slow_receiver_times_out_retryably() {
    let rx = Receiver::start(vec![ok().slow(Duration::from_secs(3))], ok()).await;
    let ch = channel(&cfg::<SlackConfig>(&format!(
        "url: {{ value: '{}/services/SL0W-secret' }}\ntimeout: 300ms",
        rx.base
    )));
    let o = ch.attempt_at(&note(), now()).await;
    assert!(
        matches!(&o, DeliveryOutcome::Failed { error, .. } if error.contains("timed out")),
        "{o:?}"
    );
    assert_no_secret(&ch, &o, &["SL0W-secret"]);
}

#[tokio::test]
async fn nothing_listening_is_retryable() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let ch = channel(&cfg::<MattermostConfig>(&format!(
        "url: {{ value: 'http://127.0.0.1:{port}/hooks/x' }}"
    )));
    assert!(matches!(
        ch.attempt_at(&note(), now()).await,
        DeliveryOutcome::Failed { .. }
    ));
}

#[test]
fn config_problems_name_fields_and_never_secrets() {
    let p = cfg::<TelegramConfig>(
        "bot_token: { env: HERALD_TEST_SURELY_UNSET_TG }\nchat_id: 'not a chat'\napi_url: 'ftp://x'\ntimeout: 0s\nrate_limit: [{ count: 0, per: 1s }]",
    )
    .problems();
    let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
    for want in [
        "bot_token",
        "chat_id",
        "api_url",
        "timeout",
        "rate_limit[0]",
    ] {
        assert!(fields.contains(&want), "{want} not in {p:?}");
    }
    let p =
        cfg::<DingTalkConfig>("url: { value: 'https://oapi.dingtalk.com/robot/send?x=SECRETX' }")
            .problems();
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].1.contains("access_token") && !p[0].1.contains("SECRETX"));
    let p = cfg::<SlackConfig>("url: { value: 'not a url with T0KEN' }").problems();
    assert!(
        p[0].1.contains("inline value") && !p[0].1.contains("T0KEN"),
        "{p:?}"
    );
    assert!(
        cfg::<WeComConfig>("url: { value: 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send' }")
            .problems()
            .iter()
            .any(|(_, m)| m.contains("key"))
    );
    // Unknown fields are rejected.
    assert!(serde_saphyr::from_str::<SlackConfig>("url: { env: X }\nchannel: c").is_err());
}

#[test]
fn rate_limits_default_to_the_kind_and_can_be_replaced() {
    let ch = channel(&cfg::<FeishuConfig>(
        "url: { value: 'https://open.feishu.cn/h/x' }",
    ));
    assert_eq!(ch.rate_limits(), ChannelKind::Feishu.default_rate_limits());
    let ch = channel(&cfg::<FeishuConfig>(
        "url: { value: 'https://open.feishu.cn/h/x' }\nrate_limit: [{ count: 2, per: 1m }]",
    ));
    assert_eq!(
        ch.rate_limits(),
        vec![crate::Quota::new(2, Duration::from_secs(60))]
    );
}
