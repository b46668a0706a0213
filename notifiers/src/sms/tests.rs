//! The SMS providers against the local receiver of [`crate::chat::receiver`], with
//! known-answer vectors computed independently in Python.

use std::collections::BTreeMap;

use herald_core::{DeliveryOutcome, Notification, Timestamp};

use super::aliyun::{AliyunSmsConfig, signature};
use super::gateway::SmsGatewayConfig;
use super::twilio::TwilioConfig;
use crate::channel::{Channel, ChannelKind};
use crate::chat::receiver::{Receiver, Reply};
use crate::chat::{HttpChannel, ProviderConfig};
use crate::testutil::notification;

fn cfg<C: serde::de::DeserializeOwned>(yaml: &str) -> C {
    serde_saphyr::from_str(yaml).unwrap()
}

fn channel<C: ProviderConfig>(c: &C) -> HttpChannel<C::Provider> {
    HttpChannel::new("sms", c).unwrap()
}

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

fn note(text: &str) -> Notification {
    let mut n = notification("sms");
    n.message.body = text.into();
    n
}

#[tokio::test]
async fn twilio_form_basic_auth_and_classification() {
    let rx = Receiver::start(
        vec![
            Reply::new(429, r#"{"code":20429,"message":"Too Many Requests","status":429}"#)
                .header("retry-after", "30"),
            Reply::new(400, r#"{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}"#),
        ],
        Reply::new(201, r#"{"sid":"SM123","status":"queued"}"#),
    )
    .await;
    let token = "tw1lio-T0KEN";
    let ch = channel(&cfg::<TwilioConfig>(&format!(
        "account_sid: AC0123456789abcdef\nauth_token: {{ value: '{token}' }}\nfrom: '+15005550006'\nto: '+15551234567'\napi_url: {}",
        rx.base
    )));
    assert_eq!(ch.kind(), ChannelKind::Twilio);
    assert_eq!(ch.template_kind(), "sms");
    let n = note(&"CRITICAL [prod] NodeNotReady: node-b ".repeat(20));
    let o = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(
            o,
            DeliveryOutcome::Failed {
                retry_after_secs: Some(30),
                ..
            }
        ),
        "{o:?}"
    );
    let dead = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(&dead, DeliveryOutcome::Dead { error } if error.contains("21211")),
        "{dead:?}"
    );
    assert_eq!(
        ch.attempt_at(&n, now()).await,
        DeliveryOutcome::Delivered { status: Some(201) }
    );
    let text = format!("{dead:?} {ch:?}");
    assert!(
        !text.contains(token) && !text.contains("QUMwMTIz"),
        "{text}"
    );

    let r = &rx.seen()[2];
    assert_eq!(
        r.path,
        "/2010-04-01/Accounts/AC0123456789abcdef/Messages.json"
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    // python3 -c 'import base64;print(base64.b64encode(b"AC0123456789abcdef:tw1lio-T0KEN").decode())'
    assert_eq!(
        r.header("authorization").as_deref(),
        Some("Basic QUMwMTIzNDU2Nzg5YWJjZGVmOnR3MWxpby1UMEtFTg==")
    );
    let form: BTreeMap<String, String> = r.form().into_iter().collect();
    assert_eq!(form["To"], "+15551234567");
    assert_eq!(form["From"], "+15005550006");
    assert_eq!(super::segments::count(&form["Body"]), 2);
    assert!(form["Body"].ends_with("..."));
}

#[test]
fn aliyun_signature_known_answer() {
    // python3 -c '
    // import hmac,hashlib,base64,urllib.parse
    // def enc(s): return urllib.parse.quote(s, safe="~")
    // params={"AccessKeyId":"LTAItestkeyid","Action":"SendSms","Format":"JSON",
    //   "PhoneNumbers":"13800000000","SignName":"Herald","SignatureMethod":"HMAC-SHA1",
    //   "SignatureNonce":"9f3c1c1e-nonce","SignatureVersion":"1.0","TemplateCode":"SMS_123456",
    //   "TemplateParam":"{\"text\":\"CRITICAL node-b NotReady\"}","Timestamp":"2023-11-14T22:13:20Z",
    //   "Version":"2017-05-25"}
    // q="&".join(enc(k)+"="+enc(params[k]) for k in sorted(params))
    // sts="POST&"+enc("/")+"&"+enc(q)
    // print(base64.b64encode(hmac.new(b"aliyunTestSecret&", sts.encode(), hashlib.sha1).digest()).decode())'
    let params: BTreeMap<String, String> = [
        ("AccessKeyId", "LTAItestkeyid"),
        ("Action", "SendSms"),
        ("Format", "JSON"),
        ("PhoneNumbers", "13800000000"),
        ("SignName", "Herald"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", "9f3c1c1e-nonce"),
        ("SignatureVersion", "1.0"),
        ("TemplateCode", "SMS_123456"),
        ("TemplateParam", r#"{"text":"CRITICAL node-b NotReady"}"#),
        ("Timestamp", "2023-11-14T22:13:20Z"),
        ("Version", "2017-05-25"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        signature(&params, "aliyunTestSecret", "POST"),
        "pdsG/x2FQmXK+sRnelZT5Hq8754="
    );
    assert_eq!(super::aliyun::encode("a b*c~d/é"), "a%20b%2Ac~d%2F%C3%A9");
}

#[tokio::test]
async fn aliyun_signed_request_and_codes() {
    let rx = Receiver::start(
        vec![
            Reply::new(200, r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发分钟级流控Permits:1","RequestId":"r1"}"#),
            Reply::new(400, r#"{"Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation.","RequestId":"r2"}"#),
        ],
        Reply::new(200, r#"{"Code":"OK","Message":"OK","BizId":"b1","RequestId":"r3"}"#),
    )
    .await;
    let secret = "aliyunTestSecret";
    let ch = channel(&cfg::<AliyunSmsConfig>(&format!(
        "access_key_id: LTAItestkeyid\naccess_key_secret: {{ value: '{secret}' }}\nsign_name: Herald\ntemplate_code: SMS_123456\nphone_numbers: ['13800000000', '13900000000']\nendpoint: {}",
        rx.base
    )));
    let n = note("CRITICAL [prod] NodeNotReady: node-b \"quoted\"");
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
    assert!(
        matches!(&dead, DeliveryOutcome::Dead { error } if error.contains("SignatureDoesNotMatch"))
    );
    assert!(ch.attempt_at(&n, now()).await.is_delivered());
    assert!(!format!("{dead:?} {ch:?}").contains(secret));

    let r = &rx.seen()[2];
    let mut form: BTreeMap<String, String> = r.form().into_iter().collect();
    let sig = form.remove("Signature").unwrap();
    assert_eq!(form["Action"], "SendSms");
    assert_eq!(form["Version"], "2017-05-25");
    assert_eq!(form["SignatureMethod"], "HMAC-SHA1");
    assert_eq!(form["SignatureVersion"], "1.0");
    assert_eq!(form["Format"], "JSON");
    assert_eq!(form["Timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(form["PhoneNumbers"], "13800000000,13900000000");
    assert_eq!(form["SignatureNonce"].len(), 32);
    let param: serde_json::Value = serde_json::from_str(&form["TemplateParam"]).unwrap();
    assert_eq!(param["text"], n.message.body);
    // The receiver recomputes the signature over what it received (the function itself is
    // pinned by the known-answer test above).
    assert_eq!(sig, signature(&form, secret, "POST"));
    // A new instant gives a new nonce.
    let later = Timestamp::from_second(1_700_000_001).unwrap();
    assert!(ch.attempt_at(&n, later).await.is_delivered());
    let form2: BTreeMap<String, String> = rx.seen()[3].form().into_iter().collect();
    assert_ne!(form2["SignatureNonce"], form["SignatureNonce"]);
}

#[tokio::test]
async fn gateway_templated_json_and_form() {
    let rx = Receiver::start(
        vec![Reply::new(503, "busy").header("retry-after", "5")],
        Reply::new(200, "{}"),
    )
    .await;
    let ch = channel(&cfg::<SmsGatewayConfig>(&format!(
        "url: {{ value: '{}/send?apikey=gw-K3Y' }}\nto: '+15551234567'\nfields:\n  recipient: '{{to}}'\n  message: 'herald: {{text}}'\n  sender: kube-herald\nheaders:\n  Authorization: {{ value: 'Bearer gw-T0KEN' }}",
        rx.base
    )));
    let n = note("he said \"{to}\" } and \\ left");
    let o = ch.attempt_at(&n, now()).await;
    assert!(
        matches!(
            o,
            DeliveryOutcome::Failed {
                retry_after_secs: Some(5),
                ..
            }
        ),
        "{o:?}"
    );
    assert!(ch.attempt_at(&n, now()).await.is_delivered());
    assert!(!format!("{o:?} {ch:?}").contains("gw-T0KEN") && !format!("{ch:?}").contains("gw-K3Y"));
    let r = &rx.seen()[1];
    assert_eq!(
        r.header("authorization").as_deref(),
        Some("Bearer gw-T0KEN")
    );
    assert_eq!(r.query_param("apikey").as_deref(), Some("gw-K3Y"));
    let b = r.json();
    assert_eq!(b["recipient"], "+15551234567");
    assert_eq!(b["message"], "herald: he said \"{to}\" } and \\ left");
    assert_eq!(b["sender"], "kube-herald");

    let ch = channel(&cfg::<SmsGatewayConfig>(&format!(
        "url: {{ value: '{}/form' }}\nformat: form\nto: '+15551234567'\nfields: {{ to: '{{to}}', body: '{{text}}' }}",
        rx.base
    )));
    assert!(ch.attempt_at(&note("a&b=c"), now()).await.is_delivered());
    let form: BTreeMap<String, String> = rx.seen()[2].form().into_iter().collect();
    assert_eq!(form["body"], "a&b=c");
    assert_eq!(form["to"], "+15551234567");
}

#[test]
fn sms_config_problems() {
    let p = cfg::<TwilioConfig>(
        "account_sid: 'bad sid'\nauth_token: { env: HERALD_TEST_SURELY_UNSET_TW }\nto: '555'\nmax_segments: 0",
    )
    .problems();
    let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
    for want in ["account_sid", "auth_token", "from", "to", "max_segments"] {
        assert!(fields.contains(&want), "{want} not in {p:?}");
    }
    let p = cfg::<SmsGatewayConfig>("url: { value: 'http://x/' }\nto: '1'\nfields: { a: b }")
        .problems();
    assert!(
        p.iter().any(|(f, m)| f == "fields" && m.contains("{text}")),
        "{p:?}"
    );
    let p = cfg::<AliyunSmsConfig>(
        "access_key_id: ''\naccess_key_secret: { value: s }\nsign_name: S\ntemplate_code: T\nphone_numbers: ['12x']",
    )
    .problems();
    let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
    assert!(
        fields.contains(&"access_key_id") && fields.contains(&"phone_numbers[0]"),
        "{p:?}"
    );
}
