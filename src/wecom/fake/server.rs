//! The fake's HTTP endpoints, answering as WeCom does (see WeCom's server API documentation).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::errors::error_response;
use super::org::{FakeAttr, FakeUser};
use super::state::{FakeLogin, FakeState};
use crate::wecom::api::Endpoint;

pub type Shared = Arc<Mutex<FakeState>>;
type Params = Query<HashMap<String, String>>;
type Caller = ConnectInfo<SocketAddr>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route(Endpoint::GetToken.path(), get(gettoken))
        .route(Endpoint::DepartmentList.path(), get(department_list))
        .route(Endpoint::UserList.path(), get(user_list))
        .route(Endpoint::UserGet.path(), get(user_get))
        .route(Endpoint::AgentGet.path(), get(agent_get))
        .route(Endpoint::GetUserInfo.path(), get(getuserinfo))
        .route(Endpoint::Authorize.path(), get(authorize))
        .route(Endpoint::QrLogin.path(), get(qr_login))
        .with_state(state)
}

fn ok(mut payload: Value) -> Response {
    payload["errcode"] = json!(0);
    payload["errmsg"] = json!("ok");
    axum::Json(payload).into_response()
}

/// Runs `answer` for an API call after WeCom's checks; any errcode becomes WeCom's error shape.
fn api(
    state: &Shared,
    endpoint: Endpoint,
    caller: SocketAddr,
    params: &HashMap<String, String>,
    answer: impl FnOnce(&mut FakeState) -> Result<Value, i64>,
) -> Response {
    let mut state = state.lock().expect("fake WeCom state");
    if let Some(raw) = state.take_raw_answer(endpoint) {
        let status = StatusCode::from_u16(raw.status).expect("a valid HTTP status");
        return (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            raw.body,
        )
            .into_response();
    }
    let result = state.begin_call(endpoint, caller.ip()).and_then(|()| {
        if endpoint != Endpoint::GetToken {
            state.check_token(params.get("access_token").map(String::as_str))?;
        }
        answer(&mut state)
    });
    match result {
        Ok(payload) => ok(payload),
        Err(code) => {
            let hint = state.next_hint();
            error_response(code, caller.ip(), hint)
        }
    }
}

async fn gettoken(State(state): State<Shared>, caller: Caller, Query(p): Params) -> Response {
    api(&state, Endpoint::GetToken, caller.0, &p, |s| {
        let corpid = p.get("corpid").filter(|c| !c.is_empty()).ok_or(41002)?;
        let secret = p.get("corpsecret").filter(|c| !c.is_empty()).ok_or(41004)?;
        if *corpid != s.org.corp_id {
            return Err(40013);
        }
        if *secret != s.org.secret {
            return Err(40001);
        }
        let (token, expires_in) = s.issue_token();
        Ok(json!({ "access_token": token, "expires_in": expires_in }))
    })
}

fn department_json(s: &FakeState, id: u64) -> Value {
    let d = s
        .org
        .departments
        .iter()
        .find(|d| d.id == id)
        .expect("listed");
    json!({
        "id": d.id, "name": d.name, "name_en": "", "department_leader": [],
        "parentid": d.parent_id, "order": 100_000_000 - d.id,
    })
}

async fn department_list(
    State(state): State<Shared>,
    caller: Caller,
    Query(p): Params,
) -> Response {
    api(&state, Endpoint::DepartmentList, caller.0, &p, |s| {
        let visible = s.visible_departments();
        let wanted: HashSet<u64> = match p.get("id").filter(|id| !id.is_empty()) {
            None => visible.clone(),
            Some(id) => {
                let id: u64 = id.parse().map_err(|_| 60003)?;
                if !s.org.departments.iter().any(|d| d.id == id) {
                    return Err(60003);
                }
                if !visible.contains(&id) {
                    return Err(60011);
                }
                let mut subtree = HashSet::from([id]);
                loop {
                    let before = subtree.len();
                    for d in &s.org.departments {
                        if subtree.contains(&d.parent_id) {
                            subtree.insert(d.id);
                        }
                    }
                    if subtree.len() == before {
                        break subtree;
                    }
                }
            }
        };
        let list: Vec<Value> = s
            .org
            .departments
            .iter()
            .filter(|d| wanted.contains(&d.id))
            .map(|d| department_json(s, d.id))
            .collect();
        Ok(json!({ "department": list }))
    })
}

/// A full user object as this app may see it.
fn user_json(s: &FakeState, user: &FakeUser, visible: &HashSet<u64>) -> Value {
    let departments: Vec<u64> = user
        .departments
        .iter()
        .copied()
        .filter(|d| visible.contains(d))
        .collect();
    let attrs: Vec<Value> = user
        .attributes
        .iter()
        .map(|a| match a {
            FakeAttr::Text { name, value } => {
                json!({ "type": 0, "name": name, "text": { "value": value } })
            }
            FakeAttr::Web { name, url, title } => {
                json!({ "type": 1, "name": name, "web": { "url": url, "title": title } })
            }
        })
        .collect();
    let mut value = json!({
        "userid": user.userid,
        "name": user.name,
        "department": departments,
        "order": vec![0; departments.len()],
        "position": user.position,
        "is_leader_in_dept": vec![0; departments.len()],
        "direct_leader": [],
        "telephone": "",
        "alias": "",
        "open_userid": format!("wo{}", user.userid.to_ascii_lowercase()),
        "status": user.status,
        "extattr": { "attrs": attrs },
        "external_position": "",
    });
    if let Some(main) = departments.first() {
        value["main_department"] = json!(main);
    }
    if !s.org.post_2022_app {
        value["mobile"] = json!(user.mobile);
        value["gender"] = json!("1");
        value["email"] = json!(user.email);
        value["biz_mail"] = json!(user.biz_mail);
        value["avatar"] = json!("http://wx.qlogo.cn/mmopen/fake/0");
        value["thumb_avatar"] = json!("http://wx.qlogo.cn/mmopen/fake/100");
        value["address"] = json!("");
    }
    value
}

async fn user_list(State(state): State<Shared>, caller: Caller, Query(p): Params) -> Response {
    api(&state, Endpoint::UserList, caller.0, &p, |s| {
        let id: u64 = p
            .get("department_id")
            .and_then(|id| id.parse().ok())
            .ok_or(60003)?;
        if !s.org.departments.iter().any(|d| d.id == id) {
            return Err(60003);
        }
        let visible = s.visible_departments();
        if !visible.contains(&id) {
            return Err(60011);
        }
        let list: Vec<Value> = s
            .org
            .users
            .iter()
            .filter(|u| u.departments.contains(&id))
            .map(|u| user_json(s, u, &visible))
            .collect();
        Ok(json!({ "userlist": list }))
    })
}

async fn user_get(State(state): State<Shared>, caller: Caller, Query(p): Params) -> Response {
    api(&state, Endpoint::UserGet, caller.0, &p, |s| {
        let userid = p.get("userid").ok_or(60111)?;
        let user = s
            .org
            .users
            .iter()
            .find(|u| u.userid.eq_ignore_ascii_case(userid))
            .ok_or(60111)?;
        let visible = s.visible_departments();
        if !s.user_visible(user, &visible) {
            return Err(60011);
        }
        Ok(user_json(s, user, &visible))
    })
}

async fn agent_get(State(state): State<Shared>, caller: Caller, Query(p): Params) -> Response {
    api(&state, Endpoint::AgentGet, caller.0, &p, |s| {
        let agent: u64 = p.get("agentid").and_then(|a| a.parse().ok()).ok_or(40056)?;
        if agent != s.org.agent_id {
            return Err(40056);
        }
        let users: Vec<Value> = s
            .org
            .visible_users
            .iter()
            .map(|u| json!({ "userid": u }))
            .collect();
        Ok(json!({
            "agentid": agent,
            "name": "tablegate",
            "square_logo_url": "",
            "description": "",
            "allow_userinfos": { "user": users },
            "allow_partys": { "partyid": s.org.visible_departments },
            "allow_tags": { "tagid": [] },
            "close": 0,
            "redirect_domain": s.trusted_domain.clone().unwrap_or_default(),
            "report_location_flag": 0,
            "isreportenter": 0,
            "home_url": "",
        }))
    })
}

async fn getuserinfo(State(state): State<Shared>, caller: Caller, Query(p): Params) -> Response {
    api(&state, Endpoint::GetUserInfo, caller.0, &p, |s| {
        let code = p.get("code").ok_or(40029)?;
        match s.take_code(code)? {
            FakeLogin::Member(userid) => Ok(json!({ "userid": userid })),
            FakeLogin::NonMember(openid) => Ok(json!({ "openid": openid, "external_userid": "" })),
        }
    })
}

/// The browser pages: check the app and redirect_uri, then send the browser back with a code.
fn login_page(
    state: &Shared,
    endpoint: Endpoint,
    caller: SocketAddr,
    p: &HashMap<String, String>,
) -> Response {
    let mut s = state.lock().expect("fake WeCom state");
    let checked = s.begin_call(endpoint, caller.ip()).and_then(|()| {
        if p.get("appid") != Some(&s.org.corp_id) {
            return Err(40013);
        }
        if endpoint == Endpoint::QrLogin
            && p.get("agentid").and_then(|a| a.parse::<u64>().ok()) != Some(s.org.agent_id)
        {
            return Err(40056);
        }
        let redirect = p
            .get("redirect_uri")
            .and_then(|r| url::Url::parse(r).ok())
            .ok_or(50001)?;
        if let Some(domain) = &s.trusted_domain {
            let host = redirect.host_str().unwrap_or_default();
            let authority = match redirect.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            };
            if &authority != domain {
                return Err(50001);
            }
        }
        Ok(redirect)
    });
    let mut redirect = match checked {
        Ok(redirect) => redirect,
        Err(code) => {
            let hint = s.next_hint();
            return error_response(code, caller.ip(), hint);
        }
    };
    let Some(login) = s.login.clone() else {
        return (
            StatusCode::CONFLICT,
            "fake WeCom: nobody is logged in; call FakeWeCom::log_in_as first",
        )
            .into_response();
    };
    let code = s.issue_code(login);
    redirect
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair(
            "state",
            p.get("state").map(String::as_str).unwrap_or_default(),
        );
    (
        StatusCode::FOUND,
        [(header::LOCATION, redirect.as_str().to_owned())],
    )
        .into_response()
}

async fn authorize(State(state): State<Shared>, caller: Caller, Query(p): Params) -> Response {
    login_page(&state, Endpoint::Authorize, caller.0, &p)
}

async fn qr_login(State(state): State<Shared>, caller: Caller, Query(p): Params) -> Response {
    login_page(&state, Endpoint::QrLogin, caller.0, &p)
}
