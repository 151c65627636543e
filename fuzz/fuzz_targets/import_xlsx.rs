//! The Excel import, validate-only, on arbitrary bytes against the demo dataset (SQLite): a
//! report or a refusal, never a panic, and nothing written.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use xueji_app::auth::{CurrentUser, SessionKind};
use xueji_app::import::{Commit, ImportOptions, XlsxSource, no_progress};
use xueji_app::testing::demo_app;
use xueji_app::{App, Backend};

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: App,
    user: CurrentUser,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (app, user) = rt.block_on(async {
        let app = demo_app(Backend::Sqlite).await;
        let user = app
            .login(
                "4101050001-admin",
                xueji_app::seed::DEMO_PASSWORD,
                "127.0.0.1",
                SessionKind::Api,
            )
            .await
            .unwrap()
            .user;
        (app, user)
    });
    Fixture { rt, app, user }
});

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    let opts = ImportOptions {
        commit: Commit::Never,
        confirm_suspected: false,
    };
    let r = f.rt.block_on(f.app.import_students(
        &f.user,
        "4101050001",
        XlsxSource::Bytes(Arc::new(data.to_vec())),
        opts,
        &no_progress,
    ));
    if let Ok(report) = r {
        assert_eq!(report.written, 0, "validate-only never writes");
    }
});
