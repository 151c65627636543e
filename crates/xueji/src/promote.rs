//! `xueji promote --year YEAR [--region CODE]`: 升级/毕业 from the command line, run as the system
//! (one audit row per school names `system:promote`), with progress on stderr.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use xueji_app::audit::AuditActor;
use xueji_app::promotion::PromotionProgress;
use xueji_domain::ids::RegionCode;

/// Progress lines: about one per 1% of the schools, and the last.
pub async fn run(url: &str, year: i32, region: Option<&str>) -> anyhow::Result<()> {
    let app = super::open(url).await?;
    let (lo, hi) = match region {
        Some(r) => RegionCode::parse(r)
            .map_err(|e| anyhow::anyhow!("--region: {}", e.message))?
            .subtree_range(),
        None => ("000000".to_string(), "999999".to_string()),
    };
    let blockers = app.blockers_in(year, &lo, &hi).await?;
    if !blockers.is_empty() {
        println!("在办业务清理 (open businesses to finish first):");
        for b in &blockers {
            println!(
                "{}\t{}\t{} {}\t{}\t{}",
                b.student_no,
                b.name,
                b.school,
                b.school_name,
                b.grade.as_deref().unwrap_or(""),
                b.business
            );
        }
        anyhow::bail!(
            "{} students have an open business; nothing changed (finish or withdraw them first)",
            blockers.len()
        );
    }
    let started = Instant::now();
    let last = AtomicU64::new(0);
    let progress = |p: PromotionProgress| {
        let step = (p.schools_total / 100).max(1);
        if p.schools_seen == p.schools_total
            || p.schools_seen >= last.load(Ordering::Relaxed) + step
        {
            last.store(p.schools_seen, Ordering::Relaxed);
            eprintln!(
                "学校 schools {}/{}: 升级 promoted {}, 毕业 graduated {} ({:.1}s)",
                p.schools_seen,
                p.schools_total,
                p.promoted,
                p.graduated,
                started.elapsed().as_secs_f64()
            );
        }
    };
    let r = app
        .promote_range(&AuditActor::system("promote"), year, &lo, &hi, &progress)
        .await
        .map_err(|e| match e {
            xueji_app::AppError::Domain(d) => anyhow::anyhow!("{}", d.message),
            other => anyhow::anyhow!("{other}"),
        })?;
    println!(
        "{}学年升级：学校{}所（本次{}所，已办过{}所），升级{}人，毕业{}人 | schools {}, done {}, skipped {}, promoted {}, graduated {} in {:.1}s",
        r.year,
        r.schools,
        r.schools_done,
        r.schools_skipped,
        r.promoted,
        r.graduated,
        r.schools,
        r.schools_done,
        r.schools_skipped,
        r.promoted,
        r.graduated,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
