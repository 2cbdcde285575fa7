//! Runs the fake WeCom with a small company, for trying `tablegate wecom sync` and the login
//! pages without a real WeCom app. Prints the settings to put in tablegate.toml, then serves
//! until interrupted.
//!
//! `cargo run --example wecom_fake_server`

use tablegate::wecom::fake::{FakeLogin, FakeOrg, FakeUser, FakeWeCom};

#[tokio::main]
async fn main() {
    let mut org = FakeOrg::new("wwdemo", 1000002, "demo-secret", "Demo Company")
        .department(2, "Sales", 1)
        .department(3, "East", 2)
        .department(4, "Engineering", 1)
        .user(
            FakeUser::new("zhangsan", "张三", &[3, 4])
                .position("Sales Rep")
                .attr("region", "East"),
        )
        .user(FakeUser::new("lisi", "李四", &[2]).position("Sales Manager"))
        .user(FakeUser::new("wangwu", "王五", &[4]).position("Engineer"));
    org.post_2022_app = true;
    let wecom = FakeWeCom::start(org).await;
    wecom.log_in_as(FakeLogin::Member("zhangsan".into()));
    println!(
        "[wecom]\ncorp_id = \"wwdemo\"\nagent_id = 1000002\nsecret = {{ value = \"demo-secret\" }}\n\
         email_suffix = \"demo.example.com\"\ninitial_password = {{ value = \"Welcome-2026\" }}\n\
         base_url = \"{}\"\nauthorize_url = \"{}\"\nqr_login_url = \"{}\"",
        wecom.base_url(),
        wecom.authorize_url(),
        wecom.qr_login_url()
    );
    println!("\n# logins complete as zhangsan; Ctrl-C to stop");
    let _ = tokio::signal::ctrl_c().await;
}
