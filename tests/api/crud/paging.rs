//! ListParticipants and ListServiceParticipants: page sizes, walking every page, pages
//! that stay exact while participants come and go, and tokens the server did not issue
//! for the list.

use std::collections::BTreeSet;

use participants_facade::proto::CreateParticipantRequest;
use tonic::Code;

use super::*;

#[tokio::test]
async fn page_sizes_are_honoured_within_each_apis_bounds() {
    // Arrange: 120 participants in one conversation of each API.
    let app = spawn_app().await;
    let conversation = conversation_id();
    let v2 = create_v2_many(&app, &conversation, 120).await;
    let (service, chat) = (sid("IS"), sid("CH"));
    let v1 = create_v1_many(&app, &service, &chat, 120).await;

    // Act and assert: (page_size, participants on the first page, a next page).
    let v2_cases: &[(i32, usize, bool)] = &[
        (1, 1, true),
        (0, 50, true),
        (50, 50, true),
        (119, 119, true),
        (120, 120, false),
        (1000, 120, false),
    ];
    for &(size, expected, more) in v2_cases {
        let page = list_v2(&app, &conversation, size, "").await.expect("list");
        assert_eq!(page.participants.len(), expected, "v2 page_size {size}");
        assert_eq!(!page.next_page_token.is_empty(), more, "v2 page_size {size}");
        assert_eq!(ids(&page.participants), ids(&v2[..expected]), "v2 {size}");
    }
    let v1_cases: &[(i32, usize, bool)] = &[(1, 1, true), (0, 50, true), (100, 100, true)];
    for &(size, expected, more) in v1_cases {
        let page = list_v1(&app, &service, &chat, size, "").await.expect("list");
        assert_eq!(page.participants.len(), expected, "v1 page_size {size}");
        assert_eq!(!page.next_page_token.is_empty(), more, "v1 page_size {size}");
        assert_eq!(sids(&page.participants), sids(&v1[..expected]), "v1 {size}");
    }
    for size in [-1, 1001, i32::MIN, i32::MAX] {
        assert_bad_request(
            list_v2(&app, &conversation, size, "").await,
            &["page_size"],
            &format!("v2 page_size {size}"),
        );
    }
    for size in [-1, 101, 1000] {
        assert_bad_request(
            list_v1(&app, &service, &chat, size, "").await,
            &["page_size"],
            &format!("v1 page_size {size}"),
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn walking_every_page_returns_each_participant_once_oldest_first() {
    // Arrange
    let app = spawn_app().await;
    let conversation = conversation_id();
    let v2 = create_v2_many(&app, &conversation, 120).await;
    let (service, chat) = (sid("IS"), sid("CH"));
    let v1 = create_v1_many(&app, &service, &chat, 120).await;
    // Participants of other conversations are never listed.
    create_v2_many(&app, &conversation_id(), 3).await;
    create_v1_many(&app, &service, &sid("CH"), 3).await;

    // Act and assert
    for size in [1, 7, 50, 119, 120, 1000] {
        let all = walk_v2(&app, &conversation, size).await;
        assert_eq!(all, v2, "v2 pages of {size}");
    }
    for size in [1, 7, 100] {
        let all = walk_v1(&app, &service, &chat, size).await;
        assert_eq!(
            all.iter().map(v1_record).collect::<Vec<_>>(),
            v1.iter().map(v1_record).collect::<Vec<_>>(),
            "v1 pages of {size}"
        );
    }
    // An empty conversation is one empty page.
    let empty = list_v2(&app, &conversation_id(), 0, "").await.unwrap();
    assert!(empty.participants.is_empty() && empty.next_page_token.is_empty());
    let empty = list_v1(&app, &service, &sid("CH"), 0, "").await.unwrap();
    assert!(empty.participants.is_empty() && empty.next_page_token.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn participants_created_and_deleted_between_pages_are_neither_skipped_nor_repeated() {
    // Arrange: 30 v1 participants, read in pages of 10.
    let app = spawn_app().await;
    let (service, chat) = (sid("IS"), sid("CH"));
    let initial = create_v1_many(&app, &service, &chat, 30).await;
    let first = list_v1(&app, &service, &chat, 10, "").await.unwrap();
    assert_eq!(sids(&first.participants), sids(&initial[..10]));

    // Act: the last participant the page showed (the token's position) is deleted, and so
    // is one not seen yet; five are created.
    delete_v1(&app, &service, &chat, &initial[9].sid).await.unwrap();
    delete_v1(&app, &service, &chat, &initial[15].sid).await.unwrap();
    let added = create_v1_many(&app, &service, &chat, 5).await;
    let mut added = sids(&added);
    let mut seen = sids(&first.participants);
    let mut token = first.next_page_token;
    let mut pages = 1;
    while !token.is_empty() {
        let page = list_v1(&app, &service, &chat, 10, &token).await.unwrap();
        seen.extend(sids(&page.participants));
        token = page.next_page_token;
        pages += 1;
        assert!(pages < 10, "too many pages");
        if pages == 2 {
            // Another deletion of an unseen one, and a creation, between later pages.
            delete_v1(&app, &service, &chat, &initial[25].sid).await.unwrap();
            added.extend(sids(&create_v1_many(&app, &service, &chat, 1).await));
        }
    }

    // Assert: every participant that existed throughout is listed once, in order, the
    // deleted unseen ones are not, and the new ones come last.
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a participant was listed twice");
    let mut expected: Vec<String> = sids(&initial)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| ![15, 25].contains(i))
        .map(|(_, s)| s)
        .collect();
    expected.extend(added);
    assert_eq!(seen, expected);

    // v2 has no delete: creations between pages come last, nothing is repeated.
    let conversation = conversation_id();
    let initial = create_v2_many(&app, &conversation, 12).await;
    let first = list_v2(&app, &conversation, 5, "").await.unwrap();
    let added = create_v2_many(&app, &conversation, 3).await;
    let mut seen = ids(&first.participants);
    let mut token = first.next_page_token;
    for _ in 0..10 {
        if token.is_empty() {
            break;
        }
        let page = list_v2(&app, &conversation, 5, &token).await.unwrap();
        seen.extend(ids(&page.participants));
        token = page.next_page_token;
    }
    assert!(token.is_empty(), "the walk ended");
    let mut expected = ids(&initial);
    expected.extend(ids(&added));
    assert_eq!(seen, expected);
    app.stop().await;
}

#[tokio::test]
async fn tokens_not_issued_by_this_server_for_this_list_are_invalid_argument() {
    // Arrange: two v2 conversations and two v1 conversations, each with a next page.
    let app = spawn_app().await;
    let conversation = conversation_id();
    let other_conversation = conversation_id();
    create_v2_many(&app, &conversation, 3).await;
    create_v2_many(&app, &other_conversation, 3).await;
    let (service, chat) = (sid("IS"), sid("CH"));
    let other_chat = sid("CH");
    create_v1_many(&app, &service, &chat, 3).await;
    create_v1_many(&app, &service, &other_chat, 3).await;
    let token = list_v2(&app, &conversation, 1, "").await.unwrap().next_page_token;
    let other_token = list_v2(&app, &other_conversation, 1, "")
        .await
        .unwrap()
        .next_page_token;
    let v1_token = list_v1(&app, &service, &chat, 1, "")
        .await
        .unwrap()
        .next_page_token;
    let other_v1_token = list_v1(&app, &service, &other_chat, 1, "")
        .await
        .unwrap()
        .next_page_token;
    // The same conversation sid under another chat service is another list.
    let other_service = sid("IS");
    assert!(!token.is_empty() && !v1_token.is_empty());
    let flipped = {
        let mut bytes = token.clone().into_bytes();
        let i = bytes.len() / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let server_b = spawn_app().await;
    create_v2_many(&server_b, &conversation, 3).await;
    let foreign_server = list_v2(&server_b, &conversation, 1, "")
        .await
        .unwrap()
        .next_page_token;

    // Act and assert
    let v2_cases: &[(&str, &str)] = &[
        ("another conversation's token", &other_token),
        ("a v1 token", &v1_token),
        ("a flipped character", &flipped),
        ("truncated", &token[..token.len() - 2]),
        ("one character short", &token[..token.len() - 1]),
        ("extended", &format!("{token}AAAA")),
        ("garbage", "garbage"),
        ("base64 of nothing useful", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ("another server's token", &foreign_server),
        ("with a space", "a b"),
        ("over-long", &"A".repeat(4096)),
    ];
    for (case, bad) in v2_cases {
        assert_bad_request(list_v2(&app, &conversation, 1, bad).await, &["page_token"], case);
    }
    let v1_cases: &[(&str, &str, &str)] = &[
        ("a v2 token", &service, &token),
        ("another conversation's token", &service, &other_v1_token),
        ("another chat service", &other_service, &v1_token),
        ("truncated", &service, &v1_token[..v1_token.len() - 3]),
        ("garbage", &service, "%%%"),
    ];
    for (case, service, bad) in v1_cases {
        assert_bad_request(list_v1(&app, service, &chat, 1, bad).await, &["page_token"], case);
    }
    // The genuine tokens still work.
    assert_eq!(
        list_v2(&app, &conversation, 1, &token).await.unwrap().participants.len(),
        1
    );
    assert_eq!(
        list_v1(&app, &service, &chat, 1, &v1_token).await.unwrap().participants.len(),
        1
    );
    server_b.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_page_token_stays_valid_across_a_restart() {
    // Arrange
    let app = spawn_app().await;
    let conversation = conversation_id();
    let created = create_v2_many(&app, &conversation, 4).await;
    let first = list_v2(&app, &conversation, 2, "").await.unwrap();

    // Act
    let app = app.restart().await;
    let second = list_v2(&app, &conversation, 2, &first.next_page_token).await;

    // Assert
    let second = second.expect("the token is the store's, not the process's");
    assert_eq!(ids(&second.participants), ids(&created[2..]));
    assert!(second.next_page_token.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn listing_an_invalid_conversation_is_invalid_argument_and_a_missing_one_is_empty() {
    let app = spawn_app().await;
    assert_bad_request(list_v2(&app, "", 0, "").await, &["conversation_id"], "empty id");
    assert_bad_request(
        list_v1(&app, "IS1", &sid("CH"), 0, "").await,
        &["chat_service_sid"],
        "bad service sid",
    );
    let unknown = list_v2(&app, &conversation_id(), 0, "").await.unwrap();
    assert!(unknown.participants.is_empty());
    // A create with an idempotency key lists once.
    let request = CreateParticipantRequest {
        idempotency_key: format!("list-{}", unique()),
        ..create_request()
    };
    let first = app.create(request.clone()).await.unwrap();
    let again = app.create(request.clone()).await.unwrap();
    assert_eq!(first, again);
    let listed = list_v2(&app, &request.conversation_id, 0, "").await.unwrap();
    assert_eq!(ids(&listed.participants), vec![first.id]);
    let status = list_v2(&app, &request.conversation_id, -3, "").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    app.stop().await;
}
