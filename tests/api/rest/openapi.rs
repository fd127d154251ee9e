//! `/openapi.json`: an OpenAPI 3.1 document of the nine participant operations, their
//! bodies, parameters and errors, and the probes; and the document agrees with the routes
//! the server answers.

use super::*;

#[tokio::test]
async fn openapi_json_is_openapi_3_1_and_documents_the_nine_operations() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let doc = openapi_document(&app).await;

    // Assert
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "OpenAPI 3.1: {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = &doc["paths"];
    let v2 = "/v2/Conversations/{ConversationSid}/Participants";
    let v1 = "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}/Participants";
    for (path, method, request_type, success) in [
        (v2.to_owned(), "post", Some("application/json"), "201"),
        (format!("{v2}/{{Sid}}"), "get", None, "200"),
        (
            v1.to_owned(),
            "post",
            Some("application/x-www-form-urlencoded"),
            "201",
        ),
        (format!("{v1}/{{Sid}}"), "get", None, "200"),
        (v2.to_owned(), "get", None, "200"),
        (
            format!("{v2}/{{Sid}}"),
            "put",
            Some("application/json"),
            "200",
        ),
        (v1.to_owned(), "get", None, "200"),
        (
            format!("{v1}/{{Sid}}"),
            "post",
            Some("application/x-www-form-urlencoded"),
            "200",
        ),
        (format!("{v1}/{{Sid}}"), "delete", None, "204"),
    ] {
        let operation = &paths[&path][method];
        assert!(
            operation.is_object(),
            "{method} {path} documented: {}",
            doc["paths"]
        );
        assert!(
            operation["responses"][success].is_object(),
            "{method} {path} answers {success}"
        );
        assert!(
            operation["responses"]["404"].is_object() || operation["responses"]["400"].is_object(),
            "{method} {path} documents its errors"
        );
        if let Some(content_type) = request_type {
            assert!(
                operation["requestBody"]["content"][content_type].is_object(),
                "{method} {path} takes {content_type}"
            );
        }
    }
    // The lists' query parameters, with Twilio's names and bounds.
    for (path, parameters) in [
        (v2, vec![("pageSize", Some(1000)), ("pageToken", None)]),
        (
            v1,
            vec![("PageSize", Some(100)), ("Page", None), ("PageToken", None)],
        ),
    ] {
        let documented = paths[path]["get"]["parameters"]
            .as_array()
            .expect("the list's parameters");
        for (name, maximum) in parameters {
            let parameter = documented
                .iter()
                .find(|p| p["name"] == name && p["in"] == "query")
                .unwrap_or_else(|| panic!("{path} documents the query parameter {name}"));
            if let Some(maximum) = maximum {
                assert_eq!(parameter["schema"]["maximum"], maximum, "{parameter}");
                assert_eq!(parameter["schema"]["minimum"], 1, "{parameter}");
            }
        }
    }
    // The answers' schemas: the lists' meta as Twilio names its fields, the update bodies.
    let schemas = &doc["components"]["schemas"];
    for (schema, fields) in [
        (
            "TokenMetaJson",
            &["key", "pageSize", "previousToken", "nextToken"][..],
        ),
        (
            "PageMetaJson",
            &[
                "page",
                "page_size",
                "first_page_url",
                "previous_page_url",
                "url",
                "next_page_url",
                "key",
            ][..],
        ),
        ("ListParticipantsJson", &["participants", "meta"][..]),
        ("ListServiceParticipantsJson", &["participants", "meta"][..]),
        (
            "UpdateParticipantBody",
            &["name", "type", "profileId", "addresses"][..],
        ),
        (
            "UpdateServiceParticipantForm",
            &[
                "DateCreated",
                "DateUpdated",
                "Identity",
                "Attributes",
                "RoleSid",
                "MessagingBinding.ProxyAddress",
                "MessagingBinding.ProjectedAddress",
                "LastReadMessageIndex",
                "LastReadTimestamp",
            ][..],
        ),
    ] {
        for field in fields {
            assert!(
                schemas[schema]["properties"][field].is_object(),
                "{schema}.{field} documented: {}",
                schemas[schema]
            );
        }
    }
    for probe in ["/healthz", "/readyz"] {
        assert!(paths[probe]["get"].is_object(), "{probe} documented");
    }
    assert!(doc["components"]["schemas"]["TwilioErrorBody"].is_object());
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_every_other_method_is_405() {
    // Arrange: the documented operations, by path and method.
    let app = spawn_app().await;
    let (base, client) = (base_url(&app), http_client());
    let doc = openapi_document(&app).await;
    let paths = doc["paths"].as_object().expect("paths");
    let concrete = |template: &str| {
        template
            .replace("{ConversationSid}", &format!("CH{}", "0".repeat(32)))
            .replace("{ChatServiceSid}", &format!("IS{}", "0".repeat(32)))
            .replace("{Sid}", "MB00000000000000000000000000000000")
    };
    let methods = ["get", "post", "put", "patch", "delete"];

    for (template, operations) in paths {
        let url = format!("{base}{}", concrete(template));
        for method in methods {
            // Act: an empty request, which a routed method refuses (or answers) itself.
            let answer = send(client.request(
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method"),
                &url,
            ))
            .await;

            // Assert
            let documented = operations.get(method).is_some();
            assert_eq!(
                answer.status.as_u16() == 405,
                !documented,
                "{method} {template}: documented {documented}, answered {answer:?}"
            );
        }
    }
}
