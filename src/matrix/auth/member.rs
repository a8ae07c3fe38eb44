//! The `m.room.member` rules: rule 4 of room versions 10 and 11, rule 5 of room version 12
//! (the same text, renumbered).
//!
//! Spec: room versions 10–12 "Authorization rules", the `m.room.member` rule and its
//! sub-rules for `join`, `invite` (including third-party invites), `leave`, `ban` and `knock`
//! (digest: spec/auth-rules.md §2 rule 4, §3 rule 5). Comments cite the v10/v11 numbers.

use serde_json::Value;

use crate::matrix::canonical_json::Object;
use crate::matrix::crypto::{self, VerifyKey};
use crate::matrix::ids;
use crate::matrix::pdu::Pdu;
use crate::matrix::redaction;
use crate::matrix::room_version::RoomVersionRules;

use super::numbering::Rule;
use super::power_levels::{creator, level, user_power_level};
use super::{AuthState, PowerLevel, Rejection, SignatureCheck, membership, reject, show, truncate};

/// The room's join rule: `content.join_rule` of the current `m.room.join_rules` event.
///
/// [impl] With no join-rules event, or one without a `join_rule` key, the room is treated as
/// `invite` (Synapse); the spec defines no default (digest: spec/auth-rules.md §1). A
/// `join_rule` that is not a string matches no rule (`None`), so joins and knocks are
/// rejected, as in Synapse.
fn join_rule(state: &dyn AuthState) -> Option<&str> {
    let Some(event) = state.get("m.room.join_rules", "") else { return Some("invite") };
    match event.content().get("join_rule") {
        None => Some("invite"),
        Some(value) => value.as_str(),
    }
}

/// Rule 4 (v12 rule 5): decides every `m.room.member` event.
pub(super) fn check_member(
    rules: &RoomVersionRules,
    event: &Pdu,
    state: &dyn AuthState,
    create: &Pdu,
    signatures: SignatureCheck<'_>,
) -> Result<(), Rejection> {
    let content = event.content();
    // 4.1: a state key and a membership are required.
    let Some(target) = event.state_key() else {
        return Err(reject(rules, Rule::MemberMalformed, "m.room.member without a state_key"));
    };
    let Some(membership_value) = content.get("membership") else {
        return Err(reject(rules, Rule::MemberMalformed, "m.room.member without membership"));
    };
    // 4.2.1: the authorising server must have signed, whatever the membership.
    check_authorising_signature(rules, event, signatures)?;
    match membership_value.as_str() {
        Some("join") => check_join(rules, event, state, create, target),
        Some("invite") => check_invite(rules, event, state, target),
        Some("leave") => check_leave(rules, event, state, target),
        Some("ban") => check_ban(rules, event, state, target),
        Some("knock") => check_knock(rules, event, state, target),
        // 4.8: any other value, including one that is not a string.
        _ => Err(reject(
            rules,
            Rule::MembershipUnknown,
            format!("membership {}", show(membership_value)),
        )),
    }
}

/// 4.2.1: "If content has a `join_authorised_via_users_server` key: if the event is not
/// validly signed by the homeserver of the user ID denoted by the key, reject."
///
/// The spec applies this to every membership; [impl] Synapse checks it only on joins.
/// [digest] A value that is not a valid user id names no homeserver, so no signature can
/// satisfy the rule: rejected even when signatures were already verified.
fn check_authorising_signature(
    rules: &RoomVersionRules,
    event: &Pdu,
    signatures: SignatureCheck<'_>,
) -> Result<(), Rejection> {
    // Not in Linearized Matrix, which has no restricted joins.
    let value = event.content().get("join_authorised_via_users_server");
    let Some(value) = value.filter(|_| rules.restricted_joins) else {
        return Ok(());
    };
    let server = value.as_str().and_then(|user| ids::parse_user_id(user).ok()).map(|(_, s)| s);
    let Some(server) = server else {
        return Err(reject(
            rules,
            Rule::MemberAuthorisingSignature,
            "join_authorised_via_users_server is not a valid user id",
        ));
    };
    match signatures {
        SignatureCheck::AlreadyVerified => Ok(()),
        SignatureCheck::Keys(keys) => {
            // Event signatures cover the redacted event, which keeps this content key.
            let redacted = redaction::redact(rules.redaction, event.json());
            crypto::verify_json(&redacted, server, keys).map_err(|error| {
                reject(
                    rules,
                    Rule::MemberAuthorisingSignature,
                    format!("not validly signed by the authorising server {server}: {error}"),
                )
            })
        }
    }
}

/// 4.3: `membership` = `join`.
fn check_join(
    rules: &RoomVersionRules,
    event: &Pdu,
    state: &dyn AuthState,
    create: &Pdu,
    target: &str,
) -> Result<(), Rejection> {
    // 4.3.1: the creator's own first join, right after the create event (v10: the creator
    // is `content.creator`; v11 and v12: the create event's sender — in v12 additional
    // creators do not get this shortcut).
    let only_prev_is_create = event.prev_events() == std::slice::from_ref(create.event_id());
    if only_prev_is_create && creator(rules, create) == Some(target) {
        return Ok(());
    }
    // 4.3.2
    if event.sender() != target {
        return Err(reject(
            rules,
            Rule::JoinSenderIsNotTarget,
            format!("{} cannot join on behalf of {target}", event.sender()),
        ));
    }
    let sender_membership = membership(state, event.sender());
    // 4.3.3
    if sender_membership == "ban" {
        return Err(reject(rules, Rule::JoinSenderBanned, format!("{target} is banned")));
    }
    let invited_or_joined = matches!(sender_membership, "invite" | "join");
    match join_rule(state) {
        // 4.3.4
        Some("invite" | "knock") => {
            if invited_or_joined {
                Ok(())
            } else {
                Err(reject(
                    rules,
                    Rule::JoinNotInvited,
                    format!("{target} is not invited (membership {sender_membership})"),
                ))
            }
        }
        // 4.3.5 (`knock_restricted` exists from room version 10, so in every Matrix version
        // here; Linearized Matrix has neither, so they fall to "otherwise, reject").
        Some("restricted" | "knock_restricted") if rules.restricted_joins => {
            // 4.3.5.1
            if invited_or_joined {
                return Ok(());
            }
            // 4.3.5.2; [impl] a missing (or non-string) authorising user fails it.
            let authoriser =
                event.content().get("join_authorised_via_users_server").and_then(Value::as_str);
            let Some(authoriser) = authoriser else {
                return Err(reject(
                    rules,
                    Rule::JoinRestrictedAuthoriser,
                    "restricted join without join_authorised_via_users_server",
                ));
            };
            if membership(state, authoriser) != "join" {
                return Err(reject(
                    rules,
                    Rule::JoinRestrictedAuthoriser,
                    format!("authorising user {authoriser} is not joined"),
                ));
            }
            let authoriser_level = user_power_level(rules, state, authoriser);
            let invite_level = level(state, "invite");
            if authoriser_level < PowerLevel::Int(invite_level) {
                return Err(reject(
                    rules,
                    Rule::JoinRestrictedAuthoriser,
                    format!(
                        "authorising user {authoriser} has level {authoriser_level}, \
                         below the invite level {invite_level}"
                    ),
                ));
            }
            // 4.3.5.3
            Ok(())
        }
        // 4.3.6
        Some("public") => Ok(()),
        // 4.3.7: `private`, unknown values and non-strings.
        other => Err(reject(
            rules,
            Rule::JoinRuleOther,
            format!(
                "join rule {} does not allow joining",
                other.map_or("(not a string)".to_owned(), truncate)
            ),
        )),
    }
}

/// 4.4: `membership` = `invite`.
fn check_invite(
    rules: &RoomVersionRules,
    event: &Pdu,
    state: &dyn AuthState,
    target: &str,
) -> Result<(), Rejection> {
    // 4.4.1: a third-party invite is decided entirely by its own sub-rules. Linearized
    // Matrix has no third-party invites: the key is ordinary content there.
    let third_party_invite = event.content().get("third_party_invite");
    if let Some(third_party_invite) = third_party_invite.filter(|_| rules.third_party_invites) {
        return check_third_party_invite(rules, event, state, target, third_party_invite);
    }
    // 4.4.2
    let sender_membership = membership(state, event.sender());
    if sender_membership != "join" {
        return Err(reject(
            rules,
            Rule::InviteSenderNotJoined,
            format!("sender has membership {sender_membership}"),
        ));
    }
    // 4.4.3
    let target_membership = membership(state, target);
    if matches!(target_membership, "join" | "ban") {
        return Err(reject(
            rules,
            Rule::InviteTargetJoinedOrBanned,
            format!("{target} has membership {target_membership}"),
        ));
    }
    // 4.4.4, 4.4.5
    let sender_level = user_power_level(rules, state, event.sender());
    let invite_level = level(state, "invite");
    if sender_level >= PowerLevel::Int(invite_level) {
        Ok(())
    } else {
        Err(reject(
            rules,
            Rule::InvitePowerLevel,
            format!("sender level {sender_level} is below the invite level {invite_level}"),
        ))
    }
}

/// 4.4.1: an invite with `content.third_party_invite`.
fn check_third_party_invite(
    rules: &RoomVersionRules,
    event: &Pdu,
    state: &dyn AuthState,
    target: &str,
    third_party_invite: &Value,
) -> Result<(), Rejection> {
    // 4.4.1.1
    if membership(state, target) == "ban" {
        return Err(reject(
            rules,
            Rule::InviteThirdPartyTargetBanned,
            format!("{target} is banned"),
        ));
    }
    // 4.4.1.2: `Value::get` on a non-object finds nothing, so a malformed
    // `third_party_invite` has no `signed`.
    let Some(signed) = third_party_invite.get("signed") else {
        return Err(reject(
            rules,
            Rule::InviteThirdPartyNoSigned,
            "third_party_invite has no signed",
        ));
    };
    // 4.4.1.3
    let (Some(mxid), Some(token)) = (signed.get("mxid"), signed.get("token")) else {
        return Err(reject(
            rules,
            Rule::InviteThirdPartyNoMxidOrToken,
            "third_party_invite.signed lacks mxid or token",
        ));
    };
    // 4.4.1.4: a non-string `mxid` is never equal to the state key.
    if mxid.as_str() != Some(target) {
        return Err(reject(
            rules,
            Rule::InviteThirdPartyMxidMismatch,
            format!("signed mxid {} is not the invited user {target}", show(mxid)),
        ));
    }
    // 4.4.1.5: a non-string `token` names no state event.
    let invite_event =
        token.as_str().and_then(|token| state.get("m.room.third_party_invite", token));
    let Some(invite_event) = invite_event else {
        return Err(reject(
            rules,
            Rule::InviteThirdPartyNoInviteEvent,
            format!("no m.room.third_party_invite with token {}", show(token)),
        ));
    };
    // 4.4.1.6
    if invite_event.sender() != event.sender() {
        return Err(reject(
            rules,
            Rule::InviteThirdPartySenderMismatch,
            format!(
                "the third-party invite was sent by {}, not {}",
                invite_event.sender(),
                event.sender()
            ),
        ));
    }
    // 4.4.1.7, 4.4.1.8
    if third_party_signature_verifies(signed, invite_event.content()) {
        Ok(())
    } else {
        Err(reject(
            rules,
            Rule::InviteThirdPartySignature,
            "no signature in third_party_invite.signed verifies with the invite's public keys",
        ))
    }
}

/// The public keys of an `m.room.third_party_invite` content: `public_key` and each
/// `public_keys[].public_key`, unpadded base64 in either alphabet (digest:
/// spec/auth-rules.md §5). Entries that are not valid ed25519 keys are skipped.
fn third_party_invite_keys(content: &Object) -> Vec<VerifyKey> {
    let mut texts: Vec<&str> = Vec::new();
    texts.extend(content.get("public_key").and_then(Value::as_str));
    if let Some(Value::Array(entries)) = content.get("public_keys") {
        texts.extend(entries.iter().filter_map(|e| e.get("public_key")).filter_map(Value::as_str));
    }
    texts.into_iter().filter_map(VerifyKey::from_base64).collect()
}

/// 4.4.1.7: "If any signature in `signed` matches any public key in the
/// `m.room.third_party_invite` event, allow."
///
/// Each signature is checked as in "Checking for a signature" (digest:
/// spec/canonical-json-and-signing.md §4): the bytes are the canonical JSON of `signed`
/// without `signatures` and `unsigned`. Any signing entity is accepted (the identity server
/// is not named anywhere the rules could check). [impl] Only key ids starting with
/// `ed25519:` are tried, and a missing `signatures` object fails (Synapse).
fn third_party_signature_verifies(signed: &Value, invite_content: &Object) -> bool {
    let Some(signed) = signed.as_object() else { return false };
    let Some(Value::Object(by_entity)) = signed.get("signatures") else { return false };
    let keys = third_party_invite_keys(invite_content);
    if keys.is_empty() {
        return false;
    }
    // Canonical JSON is enforced on every PDU, so this cannot fail for a parsed event;
    // treat a failure as "no valid signature" all the same.
    let Ok(bytes) = crypto::signed_bytes(signed) else { return false };
    let signatures = by_entity
        .values()
        .filter_map(Value::as_object)
        .flat_map(|by_key| by_key.iter())
        .filter(|(key_id, _)| key_id.starts_with("ed25519:"))
        .filter_map(|(_, signature)| signature.as_str());
    for signature in signatures {
        if keys.iter().any(|key| key.verify_bytes(&bytes, signature)) {
            return true;
        }
    }
    false
}

/// 4.5: `membership` = `leave` (leaving, rejecting an invite, kicking, unbanning).
fn check_leave(
    rules: &RoomVersionRules,
    event: &Pdu,
    state: &dyn AuthState,
    target: &str,
) -> Result<(), Rejection> {
    let sender_membership = membership(state, event.sender());
    // 4.5.1
    if event.sender() == target {
        return if matches!(sender_membership, "invite" | "join" | "knock") {
            Ok(())
        } else {
            Err(reject(
                rules,
                Rule::LeaveSelfNotMember,
                format!("{target} cannot leave with membership {sender_membership}"),
            ))
        };
    }
    // 4.5.2
    if sender_membership != "join" {
        return Err(reject(
            rules,
            Rule::LeaveSenderNotJoined,
            format!("sender has membership {sender_membership}"),
        ));
    }
    let sender_level = user_power_level(rules, state, event.sender());
    // 4.5.3
    let ban_level = level(state, "ban");
    if membership(state, target) == "ban" && sender_level < PowerLevel::Int(ban_level) {
        return Err(reject(
            rules,
            Rule::LeaveUnbanPowerLevel,
            format!("sender level {sender_level} is below the ban level {ban_level}"),
        ));
    }
    // 4.5.4, 4.5.5
    let kick_level = level(state, "kick");
    let target_level = user_power_level(rules, state, target);
    if sender_level >= PowerLevel::Int(kick_level) && target_level < sender_level {
        Ok(())
    } else {
        Err(reject(
            rules,
            Rule::LeavePowerLevel,
            format!(
                "sender level {sender_level} needs to be at least the kick level {kick_level} \
                 and above the target's level {target_level}"
            ),
        ))
    }
}

/// 4.6: `membership` = `ban`.
fn check_ban(
    rules: &RoomVersionRules,
    event: &Pdu,
    state: &dyn AuthState,
    target: &str,
) -> Result<(), Rejection> {
    // 4.6.1
    let sender_membership = membership(state, event.sender());
    if sender_membership != "join" {
        return Err(reject(
            rules,
            Rule::BanSenderNotJoined,
            format!("sender has membership {sender_membership}"),
        ));
    }
    // 4.6.2, 4.6.3
    let sender_level = user_power_level(rules, state, event.sender());
    let ban_level = level(state, "ban");
    let target_level = user_power_level(rules, state, target);
    if sender_level >= PowerLevel::Int(ban_level) && target_level < sender_level {
        Ok(())
    } else {
        Err(reject(
            rules,
            Rule::BanPowerLevel,
            format!(
                "sender level {sender_level} needs to be at least the ban level {ban_level} \
                 and above the target's level {target_level}"
            ),
        ))
    }
}

/// 4.7: `membership` = `knock`.
fn check_knock(
    rules: &RoomVersionRules,
    event: &Pdu,
    state: &dyn AuthState,
    target: &str,
) -> Result<(), Rejection> {
    // 4.7.1 (`knock_restricted` is accepted from room version 10, so in every version here).
    // Linearized Matrix 5.6.1: "anything other than `knock`".
    let rule = join_rule(state);
    let allows_knock = match rule {
        Some("knock") => true,
        Some("knock_restricted") => rules.restricted_joins,
        _ => false,
    };
    if !allows_knock {
        return Err(reject(
            rules,
            Rule::KnockJoinRule,
            format!(
                "join rule {} does not allow knocking",
                rule.map_or("(not a string)".to_owned(), truncate)
            ),
        ));
    }
    // 4.7.2
    if event.sender() != target {
        return Err(reject(
            rules,
            Rule::KnockSenderIsNotTarget,
            format!("{} cannot knock on behalf of {target}", event.sender()),
        ));
    }
    // 4.7.3, 4.7.4 (Linearized Matrix 5.6.3 allows knocking while invited).
    let sender_membership = membership(state, event.sender());
    let invited_blocks = sender_membership == "invite" && !rules.knock_while_invited;
    if matches!(sender_membership, "ban" | "join") || invited_blocks {
        Err(reject(
            rules,
            Rule::KnockMembership,
            format!("{target} cannot knock with membership {sender_membership}"),
        ))
    } else {
        Ok(())
    }
}
