//! Excel (.xlsx) exports. Identity numbers never appear; every export is audited by its caller.

use rust_xlsxwriter::{Format, Workbook, XlsxError};
use xueji_domain::ids::Grade;

use crate::App;
use crate::audit::{self, AuditEvent};
use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::paging::Page;
use crate::transfers::{TransferFilter, TransferSummary};

/// Most rows one export holds (the query page shows how many match).
pub const MAX_EXPORT_ROWS: i64 = 100_000;

fn xlsx_err(e: XlsxError) -> AppError {
    AppError::Other(format!("xlsx: {e}"))
}

fn kind_label(k: &str) -> &'static str {
    match k {
        "cross_province" => "跨省转学",
        _ => "省内转学",
    }
}

/// Writes transfer rows as a workbook with Chinese headers.
pub fn transfers_xlsx(rows: &[TransferSummary]) -> AppResult<Vec<u8>> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("转学查询").map_err(xlsx_err)?;
    let header = Format::new().set_bold().set_background_color("#DDE6F2");
    let headers = [
        "申请编号",
        "类型",
        "状态",
        "学籍号",
        "学生姓名",
        "转出学校",
        "转入学校",
        "转入年级",
        "申请时间",
        "当前环节",
        "办理期限",
        "逾期工作日",
    ];
    for (c, h) in headers.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, &header)
            .map_err(xlsx_err)?;
    }
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
    for (i, r) in rows.iter().enumerate() {
        let row = i as u32 + 1;
        let grade = Grade::parse(&r.to_grade)
            .map(|g| g.label_zh())
            .unwrap_or("");
        ws.write_number(row, 0, r.id as f64).map_err(xlsx_err)?;
        ws.write_string(row, 1, kind_label(&r.kind))
            .map_err(xlsx_err)?;
        ws.write_string(row, 2, &r.status_label).map_err(xlsx_err)?;
        ws.write_string(row, 3, &r.student_no).map_err(xlsx_err)?;
        ws.write_string(row, 4, &r.student_name).map_err(xlsx_err)?;
        ws.write_string(
            row,
            5,
            format!("{}（{}）", r.from_school_name, r.from_school),
        )
        .map_err(xlsx_err)?;
        ws.write_string(row, 6, format!("{}（{}）", r.to_school_name, r.to_school))
            .map_err(xlsx_err)?;
        ws.write_string(row, 7, grade).map_err(xlsx_err)?;
        ws.write_string(
            row,
            8,
            r.created_at
                .with_timezone(&cst)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
        )
        .map_err(xlsx_err)?;
        ws.write_string(row, 9, r.waiting_label.as_deref().unwrap_or(""))
            .map_err(xlsx_err)?;
        ws.write_string(
            row,
            10,
            r.due_date.map(|d| d.to_string()).unwrap_or_default(),
        )
        .map_err(xlsx_err)?;
        ws.write_number(row, 11, r.overdue_days as f64)
            .map_err(xlsx_err)?;
    }
    for (c, w) in [10, 10, 22, 22, 10, 30, 30, 8, 17, 24, 12, 10]
        .iter()
        .enumerate()
    {
        ws.set_column_width(c as u16, *w).map_err(xlsx_err)?;
    }
    ws.set_freeze_panes(1, 0).map_err(xlsx_err)?;
    wb.save_to_buffer().map_err(xlsx_err)
}

impl App {
    /// Exports the transfers matching the caller's current filter (跨省转学查询 → 导出), audited.
    pub async fn export_transfers(
        &self,
        user: &CurrentUser,
        filter: &TransferFilter,
    ) -> AppResult<Vec<u8>> {
        let mut rows = vec![];
        let mut page = 1;
        loop {
            let p = self
                .transfers(
                    user,
                    filter,
                    Page {
                        page,
                        per_page: 500,
                    },
                )
                .await?;
            let n = p.items.len();
            rows.extend(p.items);
            if n < 500 || rows.len() as i64 >= MAX_EXPORT_ROWS {
                break;
            }
            page += 1;
        }
        let bytes =
            tokio::task::spawn_blocking(move || transfers_xlsx(&rows).map(|b| (b, rows.len())))
                .await
                .map_err(|e| AppError::Other(e.to_string()))??;
        let mut tx = self.db.begin().await?;
        audit::record(
            &mut tx,
            self.clock.now(),
            &user.audit_actor(),
            AuditEvent {
                action: "transfer.export",
                entity_type: "transfer_query",
                entity_id: "-".into(),
                before: None,
                after: Some(serde_json::json!({
                    "rows": bytes.1, "status": filter.status, "kind": filter.kind, "todo": filter.todo,
                    "overdue": filter.overdue, "from_date": filter.from_date, "to_date": filter.to_date,
                })),
            },
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(bytes.0)
    }
}
