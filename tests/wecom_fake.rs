//! The fake answers as WeCom does: raw HTTP against it, checked against WeCom's server API documentation.

use reqwest::redirect::Policy;
use serde_json::Value;
use tablegate::wecom::fake::{FakeLogin, FakeOrg, FakeUser, FakeWeCom};

fn org() -> FakeOrg {
    let mut org = FakeOrg::new("wwfake", 1000002, "fake-secret", "Company")
        .department(2, "Sales", 1)
        .department(3, "East", 2)
        .department(4, "Hidden", 1)
        .user(FakeUser::new("zhangsan", "张三", &[2, 3]).attr("region", "East"))
        .user(FakeUser::new("lisi", "李四", &[3, 4]))
        .user(FakeUser::new("solo", "Solo", &[4]));
    org.visible_departments = vec![2];
    org.visible_users = vec!["solo".into()];
    org
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn get(wecom: &FakeWeCom, path_and_query: &str) -> (reqwest::header::HeaderMap, Value) {
    let response = http()
        .get(format!("{}{path_and_query}", wecom.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "WeCom answers errors with HTTP 200 too"
    );
    let headers = response.headers().clone();
    (headers, response.json().await.unwrap())
}

async fn token(wecom: &FakeWeCom) -> String {
    let (_, body) = get(
        wecom,
        "/cgi-bin/gettoken?corpid=wwfake&corpsecret=fake-secret",
    )
    .await;
    assert_eq!(body["expires_in"], 7200);
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn errors_have_wecom_shape() {
    let wecom = FakeWeCom::start(org()).await;
    let (headers, body) = get(&wecom, "/cgi-bin/gettoken?corpid=wwfake&corpsecret=nope").await;
    assert_eq!(body["errcode"], 40001);
    let errmsg = body["errmsg"].as_str().unwrap();
    assert!(
        errmsg.starts_with("invalid credential") && errmsg.contains(", hint: ["),
        "{errmsg}"
    );
    assert!(
        errmsg.contains(
            "from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e=40001"
        ),
        "{errmsg}"
    );
    assert_eq!(headers["error-code"], "40001");
    assert_eq!(headers["error-msg"], errmsg);
    let (_, body) = get(
        &wecom,
        "/cgi-bin/gettoken?corpid=other&corpsecret=fake-secret",
    )
    .await;
    assert_eq!(body["errcode"], 40013);
    let (_, body) = get(&wecom, "/cgi-bin/gettoken?corpid=wwfake").await;
    assert_eq!(body["errcode"], 41004);
    let (_, body) = get(&wecom, "/cgi-bin/department/list").await;
    assert_eq!(body["errcode"], 41001);
    let (_, body) = get(&wecom, "/cgi-bin/department/list?access_token=made-up").await;
    assert_eq!(body["errcode"], 40014);
}

#[tokio::test]
async fn the_visible_range_and_direct_members() {
    let wecom = FakeWeCom::start(org()).await;
    let t = token(&wecom).await;
    let (_, body) = get(
        &wecom,
        &format!("/cgi-bin/department/list?access_token={t}"),
    )
    .await;
    let ids: Vec<u64> = body["department"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3], "Sales and its sub-department");
    let (_, body) = get(
        &wecom,
        &format!("/cgi-bin/department/list?access_token={t}&id=4"),
    )
    .await;
    assert_eq!(body["errcode"], 60011);

    let (_, body) = get(
        &wecom,
        &format!("/cgi-bin/user/list?access_token={t}&department_id=2"),
    )
    .await;
    let users = body["userlist"].as_array().unwrap();
    assert_eq!(users.len(), 1, "direct members only: {body}");
    assert_eq!(users[0]["userid"], "zhangsan");
    assert_eq!(users[0]["department"], serde_json::json!([2, 3]));
    assert_eq!(users[0]["mobile"], "13800000000");
    assert_eq!(users[0]["gender"], "1");
    assert_eq!(users[0]["extattr"]["attrs"][0]["text"]["value"], "East");

    let (_, body) = get(
        &wecom,
        &format!("/cgi-bin/user/list?access_token={t}&department_id=3"),
    )
    .await;
    let lisi = &body["userlist"].as_array().unwrap()[1];
    assert_eq!(
        lisi["department"],
        serde_json::json!([3]),
        "only visible departments"
    );

    let (_, body) = get(
        &wecom,
        &format!("/cgi-bin/agent/get?access_token={t}&agentid=1000002"),
    )
    .await;
    assert_eq!(body["allow_userinfos"]["user"][0]["userid"], "solo");
    let (_, body) = get(
        &wecom,
        &format!("/cgi-bin/user/get?access_token={t}&userid=SOLO"),
    )
    .await;
    assert_eq!(body["userid"], "solo");
    assert!(
        body.get("main_department").is_none(),
        "Hidden is not visible"
    );
    let (_, body) = get(
        &wecom,
        &format!("/cgi-bin/user/get?access_token={t}&userid=ghost"),
    )
    .await;
    assert_eq!(body["errcode"], 60111);
}

#[tokio::test]
async fn post_2022_apps_get_no_private_fields() {
    let mut org = org();
    org.post_2022_app = true;
    let wecom = FakeWeCom::start(org).await;
    let t = token(&wecom).await;
    let (_, body) = get(
        &wecom,
        &format!("/cgi-bin/user/list?access_token={t}&department_id=2"),
    )
    .await;
    let user = body["userlist"][0].as_object().unwrap();
    for field in ["mobile", "gender", "email", "biz_mail", "avatar", "address"] {
        assert!(!user.contains_key(field), "{field} present");
    }
    assert!(user.contains_key("extattr"));
}

#[tokio::test]
async fn login_codes_work_once_within_five_minutes() {
    let wecom = FakeWeCom::start(org()).await;
    wecom.log_in_as(FakeLogin::Member("zhangsan".into()));
    let response = http()
        .get(format!(
            "{}?appid=wwfake&redirect_uri=http%3A%2F%2Fapp.example%2Fcb%3Fx%3D1&response_type=code&scope=snsapi_base&state=abc123&agentid=1000002",
            wecom.authorize_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.host_str(), Some("app.example"));
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["x"], "1");
    assert_eq!(query["state"], "abc123");
    let t = token(&wecom).await;
    let exchange = format!(
        "/cgi-bin/auth/getuserinfo?access_token={t}&code={}",
        query["code"]
    );
    let (_, body) = get(&wecom, &exchange).await;
    assert_eq!(body["userid"], "zhangsan");
    let (_, body) = get(&wecom, &exchange).await;
    assert_eq!(body["errcode"], 40029, "single use");

    let code = wecom.issue_code(FakeLogin::NonMember("oOUT".into()));
    let (_, body) = get(
        &wecom,
        &format!("/cgi-bin/auth/getuserinfo?access_token={t}&code={code}"),
    )
    .await;
    assert_eq!(body["openid"], "oOUT");
    assert!(body.get("userid").is_none());

    let code = wecom.issue_code(FakeLogin::Member("zhangsan".into()));
    wecom.advance_clock(std::time::Duration::from_secs(301));
    let (_, body) = get(
        &wecom,
        &format!("/cgi-bin/auth/getuserinfo?access_token={t}&code={code}"),
    )
    .await;
    assert_eq!(body["errcode"], 40029, "older than five minutes");
}

#[tokio::test]
async fn rate_limits_answer_45009() {
    let wecom = FakeWeCom::start(org()).await;
    wecom.set_rate_limit(2);
    let t = token(&wecom).await;
    let url = format!("/cgi-bin/department/list?access_token={t}");
    assert_eq!(get(&wecom, &url).await.1["errcode"], 0);
    assert_eq!(get(&wecom, &url).await.1["errcode"], 0);
    assert_eq!(get(&wecom, &url).await.1["errcode"], 45009);
    wecom.advance_clock(std::time::Duration::from_secs(60));
    let t = token(&wecom).await;
    let url = format!("/cgi-bin/department/list?access_token={t}");
    assert_eq!(
        get(&wecom, &url).await.1["errcode"],
        0,
        "a minute block lasts 60 s"
    );
}
