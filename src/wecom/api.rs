//! WeCom's server API as tablegate uses it: the endpoints and the JSON they answer with.
//!
//! What a successful answer must carry is required: `errcode` in every answer, the token of
//! gettoken, the list of department/list and user/list, the userid of a user and a department's
//! id and parent. An answer without them is not WeCom's (a gateway or proxy in between answered,
//! found by red-team review: a 502 without `errcode` read as an empty organisation). What WeCom
//! may really omit stays optional: apps created after 2022-06-20 get no mobile, email, avatar
//! and similar fields, and agent/get may name no individual users.

use std::fmt;

use serde::Deserialize;

/// The WeCom endpoints tablegate calls, plus the two browser pages of the OAuth login.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    GetToken,
    DepartmentList,
    UserList,
    UserGet,
    AgentGet,
    GetUserInfo,
    /// The OAuth authorize page inside the WeCom client (open.weixin.qq.com).
    Authorize,
    /// The QR-code login page for desktop browsers (login.work.weixin.qq.com).
    QrLogin,
}

impl Endpoint {
    /// The path on the API host (or, for the two login pages, on their own hosts).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::GetToken => "/cgi-bin/gettoken",
            Endpoint::DepartmentList => "/cgi-bin/department/list",
            Endpoint::UserList => "/cgi-bin/user/list",
            Endpoint::UserGet => "/cgi-bin/user/get",
            Endpoint::AgentGet => "/cgi-bin/agent/get",
            Endpoint::GetUserInfo => "/cgi-bin/auth/getuserinfo",
            Endpoint::Authorize => "/connect/oauth2/authorize",
            Endpoint::QrLogin => "/wwlogin/sso/login",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path().trim_start_matches("/cgi-bin/"))
    }
}

/// The part every answer has. `errcode` 0 means success.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
}

#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ApiDepartment {
    pub id: u64,
    /// Withheld from apps a service provider builds for the company (代开发) until an admin
    /// allows it.
    #[serde(default)]
    pub name: String,
    /// 0 for the root (whose id is 1).
    pub parentid: u64,
}

#[derive(Debug, Deserialize)]
pub struct DepartmentListResponse {
    pub department: Vec<ApiDepartment>,
}

/// A full user object (user/list, user/get), restricted to the fields tablegate reads.
#[derive(Clone, Debug, Deserialize)]
pub struct ApiUser {
    pub userid: String,
    pub name: Option<String>,
    /// Only the departments the app can see.
    pub department: Option<Vec<u64>>,
    pub position: Option<String>,
    pub email: Option<String>,
    pub biz_mail: Option<String>,
    /// 1 active, 2 disabled, 4 not activated, 5 left.
    pub status: Option<i64>,
    pub extattr: Option<ExtAttr>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ExtAttr {
    #[serde(default)]
    pub attrs: Vec<ExtAttrItem>,
}

/// One custom attribute; only text attributes (type 0) carry a value tablegate uses.
#[derive(Clone, Debug, Deserialize)]
pub struct ExtAttrItem {
    #[serde(rename = "type", default)]
    pub kind: i64,
    pub name: String,
    pub text: Option<TextValue>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TextValue {
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub struct UserListResponse {
    pub userlist: Vec<ApiUser>,
}

#[derive(Debug, Deserialize)]
pub struct AgentResponse {
    pub allow_userinfos: Option<AllowUsers>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AllowUsers {
    #[serde(default)]
    pub user: Vec<AllowUser>,
}

#[derive(Debug, Deserialize)]
pub struct AllowUser {
    pub userid: String,
}

/// auth/getuserinfo's answer: a member has a userid, anyone else only an openid.
#[derive(Debug, Deserialize)]
pub struct UserInfoResponse {
    #[serde(alias = "UserId")]
    pub userid: Option<String>,
    #[serde(alias = "OpenId")]
    pub openid: Option<String>,
}
