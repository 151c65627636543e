//! `GET/POST /transfers/apply?kind=…` — 跨省转学申请 / 省内转学申请, filed by the receiving school's
//! status administrator (the seed's step 3): sending province, student name and number, target
//! grade and class, reason, and up to five evidence files (multipart/form-data).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use xueji_app::transfers::{Evidence, MAX_EVIDENCE_BYTES, MAX_EVIDENCE_FILES, NewTransfer};
use xueji_domain::access::Role;
use xueji_domain::ids::Grade;
use xueji_domain::transfer::TransferKind;
use xueji_domain::{Error, ErrorCode};

use super::transfers::{Opt, check_csrf, parse_kind};
use super::{Layout, PageResult, grade_label, last_value, status_of, user_error};
use crate::AppState;
use crate::session::WebUser;

/// What the form holds (as typed, kept on a validation error).
#[derive(Debug, Clone, Default)]
pub struct Values {
    pub from_province: String,
    pub student_name: String,
    pub student_ref: String,
    pub to_grade: String,
    pub to_class_id: String,
    pub reason: String,
}

/// The message beside each field (empty when the field is fine).
#[derive(Debug, Clone, Default)]
pub struct FieldErrors {
    pub from_province: String,
    pub student_name: String,
    pub student_ref: String,
    pub to_grade: String,
    pub to_class_id: String,
    pub reason: String,
    pub evidence: String,
}

impl FieldErrors {
    /// Puts `message` beside `field`; false if the form has no such field.
    fn set(&mut self, field: &str, message: &str) -> bool {
        let slot = match field {
            "from_province" => &mut self.from_province,
            "student_name" => &mut self.student_name,
            "student_ref" => &mut self.student_ref,
            "to_grade" => &mut self.to_grade,
            "to_class_id" => &mut self.to_class_id,
            "reason" => &mut self.reason,
            "evidence" => &mut self.evidence,
            _ => return false,
        };
        if slot.is_empty() {
            *slot = message.to_string();
        }
        true
    }

    fn any(&self) -> bool {
        [
            &self.from_province,
            &self.student_name,
            &self.student_ref,
            &self.to_grade,
            &self.to_class_id,
            &self.reason,
            &self.evidence,
        ]
        .iter()
        .any(|s| !s.is_empty())
    }
}

pub struct ClassOpt {
    pub value: String,
    pub label: String,
    pub selected: bool,
    pub full: bool,
}

/// The classes of one grade (an `<optgroup>`).
pub struct ClassGroup {
    pub label: String,
    pub classes: Vec<ClassOpt>,
}

#[derive(Template, WebTemplate)]
#[template(path = "transfer_apply.html")]
pub struct ApplyPage {
    layout: Layout,
    kind: &'static str,
    kind_label: &'static str,
    intra: bool,
    school_name: String,
    own_province: String,
    own_province_name: String,
    provinces: Vec<Opt>,
    grades: Vec<Opt>,
    class_groups: Vec<ClassGroup>,
    v: Values,
    e: FieldErrors,
    /// A refusal shown above the form (student not found, name mismatch, open business …).
    top_error: Option<String>,
    /// Files were chosen before the error: the browser cannot keep them.
    files_dropped: bool,
    max_files: usize,
}

/// Builds the form page (empty, or with what was typed and what is wrong with it).
async fn render(
    s: &AppState,
    u: &WebUser,
    kind_s: &str,
    mut v: Values,
    e: FieldErrors,
    top: Option<Error>,
    files_dropped: bool,
) -> PageResult<Response> {
    let menu = format!(
        "/transfers/apply?kind={}",
        parse_kind(kind_s).map(|k| k.as_str()).unwrap_or("")
    );
    let layout = Layout::new(&s.app, u, "转学申请", &menu).await;
    let kind = parse_kind(kind_s).map_err(|e| layout.fail(e))?;
    let mut layout = layout;
    layout.retitle(format!("{}申请", kind.label_zh()));
    if u.user.role != Role::SchoolAdmin {
        return Err(layout.fail(Error::forbidden("转学申请须由转入学校的学籍管理员提交")));
    }
    let school = s
        .app
        .own_school(&u.user)
        .await
        .map_err(|e| layout.fail(e))?
        .ok_or_else(|| layout.fail(Error::not_found("本校")))?;
    let own_province = format!("{}0000", school.region.get(..2).unwrap_or("00"));
    let regions = s.app.regions(None).await.map_err(|e| layout.fail(e))?;
    let own_province_name = regions
        .iter()
        .find(|r| r.code == own_province)
        .map(|r| r.name.clone())
        .unwrap_or_else(|| own_province.clone());
    let intra = kind == TransferKind::IntraProvince;
    if intra {
        v.from_province = own_province.clone();
    }
    let provinces = regions
        .into_iter()
        .map(|r| Opt {
            selected: r.code == v.from_province,
            label: format!("{}（{}）", r.name, r.code),
            value: r.code,
        })
        .collect();
    let grades = Grade::ALL
        .iter()
        .filter(|g| school.grades.contains(&g.code()))
        .map(|g| Opt {
            value: g.code(),
            label: g.label_zh().to_string(),
            selected: g.code() == v.to_grade,
        })
        .collect();
    let classes = s
        .app
        .classes(&u.user, &school.code)
        .await
        .map_err(|e| layout.fail(e))?;
    let mut class_groups: Vec<ClassGroup> = vec![];
    for c in classes {
        let label = grade_label(&c.grade);
        let opt = ClassOpt {
            selected: c.id.to_string() == v.to_class_id,
            full: c.enrolled >= c.capacity,
            label: if c.enrolled >= c.capacity {
                format!("{}（在籍{}/容量{}，已满）", c.name, c.enrolled, c.capacity)
            } else {
                format!("{}（在籍{}/容量{}）", c.name, c.enrolled, c.capacity)
            },
            value: c.id.to_string(),
        };
        match class_groups.last_mut() {
            Some(g) if g.label == label => g.classes.push(opt),
            _ => class_groups.push(ClassGroup {
                label,
                classes: vec![opt],
            }),
        }
    }
    let status = match &top {
        Some(err) => status_of(err),
        None if e.any() => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::OK,
    };
    let page = ApplyPage {
        layout,
        kind: kind.as_str(),
        kind_label: kind.label_zh(),
        intra,
        school_name: school.name,
        own_province,
        own_province_name,
        provinces,
        grades,
        class_groups,
        v,
        e,
        top_error: top.map(|e| e.message),
        files_dropped,
        max_files: MAX_EVIDENCE_FILES,
    };
    Ok((status, page).into_response())
}

pub async fn form(
    State(s): State<AppState>,
    u: WebUser,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> PageResult<Response> {
    let pairs = query.map(|Query(p)| p).unwrap_or_default();
    render(
        &s,
        &u,
        &last_value(&pairs, "kind"),
        Values::default(),
        FieldErrors::default(),
        None,
        false,
    )
    .await
}

/// What a multipart submission carried.
#[derive(Default)]
struct Submitted {
    csrf: String,
    kind: String,
    v: Values,
    files: Vec<Evidence>,
    /// A file over the size limit (its name); its bytes were not kept.
    too_large: Option<String>,
    /// More files than allowed were chosen.
    too_many: bool,
}

async fn read_form(mut mp: Multipart) -> Result<Submitted, Error> {
    let broken = || {
        Error::new(
            ErrorCode::ValidationFailed,
            "提交的表单内容不完整或过大（佐证材料每个不超过2MB，最多5个），请返回重新填写",
        )
    };
    let mut out = Submitted::default();
    while let Some(mut field) = mp.next_field().await.map_err(|_| broken())? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "evidence" {
            let filename = field.file_name().unwrap_or_default().trim().to_string();
            let mut bytes = Vec::new();
            let mut over = false;
            while let Some(chunk) = field.chunk().await.map_err(|_| broken())? {
                if over {
                    continue;
                }
                if bytes.len() + chunk.len() > MAX_EVIDENCE_BYTES {
                    over = true;
                    bytes = Vec::new();
                } else {
                    bytes.extend_from_slice(&chunk);
                }
            }
            // An empty file input is sent as a part without a name and content.
            if filename.is_empty() && bytes.is_empty() && !over {
                continue;
            }
            if over {
                out.too_large.get_or_insert(filename);
                continue;
            }
            if out.files.len() >= MAX_EVIDENCE_FILES {
                out.too_many = true;
                continue;
            }
            out.files.push(Evidence {
                filename: if filename.is_empty() {
                    "佐证材料".to_string()
                } else {
                    filename
                },
                bytes,
            });
            continue;
        }
        let text = field.text().await.map_err(|_| broken())?;
        let slot = match name.as_str() {
            "_csrf" => &mut out.csrf,
            "kind" => &mut out.kind,
            "from_province" => &mut out.v.from_province,
            "student_name" => &mut out.v.student_name,
            "student_ref" => &mut out.v.student_ref,
            "to_grade" => &mut out.v.to_grade,
            "to_class_id" => &mut out.v.to_class_id,
            "reason" => &mut out.v.reason,
            _ => continue,
        };
        *slot = if name == "reason" {
            text
        } else {
            text.trim().to_string()
        };
    }
    Ok(out)
}

/// Errors the use case reports with a field that deserve the top of the form too.
fn shown_on_top(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotFound
            | ErrorCode::NameMismatch
            | ErrorCode::TransferInProgress
            | ErrorCode::PolicyViolation
    )
}

/// 保存: files the application and goes to its detail page.
pub async fn submit(
    State(s): State<AppState>,
    u: WebUser,
    mp: Result<Multipart, MultipartRejection>,
) -> PageResult<Response> {
    let sub = match mp {
        Ok(mp) => read_form(mp).await,
        Err(_) => Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            "表单须以 multipart/form-data 方式提交，请从转学申请页面提交",
        )),
    };
    let sub = match sub {
        Ok(sub) => sub,
        Err(e) => {
            let layout = Layout::new(&s.app, &u, "转学申请", "").await;
            return Err(layout.fail(e));
        }
    };
    if let Err(e) = check_csrf(&u, &sub.csrf) {
        let layout = Layout::new(&s.app, &u, "转学申请", "").await;
        return Err(layout.fail(e));
    }
    let had_files = !sub.files.is_empty() || sub.too_large.is_some() || sub.too_many;
    let mut v = sub.v;
    let mut e = FieldErrors::default();

    // The page's own checks, all fields at once; the use case judges the rest.
    let kind = parse_kind(&sub.kind).unwrap_or(TransferKind::CrossProvince);
    let own_province = match &u.user.region_code {
        Some(r) => format!("{}0000", r.get(..2).unwrap_or("00")),
        None => String::new(),
    };
    if kind == TransferKind::IntraProvince {
        v.from_province = own_province.clone();
    } else if v.from_province.is_empty() {
        e.set("from_province", "请选择转出省份");
    } else if v.from_province == own_province {
        e.set("from_province", "转出省份是本省，本省学生请使用省内转学");
    }
    if v.student_name.is_empty() {
        e.set("student_name", "请填写学生姓名");
    }
    if v.student_ref.is_empty() {
        e.set(
            "student_ref",
            "请填写学生的全国学籍号、临时学籍号或身份证件号码",
        );
    }
    if v.to_grade.is_empty() {
        e.set("to_grade", "请选择转入年级");
    }
    let class_id = if v.to_class_id.is_empty() {
        e.set("to_class_id", "请选择转入班级");
        0
    } else {
        v.to_class_id.parse::<i64>().unwrap_or_else(|_| {
            e.set("to_class_id", "转入班级无效，请重新选择");
            0
        })
    };
    if v.reason.trim().is_empty() {
        e.set("reason", "请填写转学理由");
    }
    if let Some(name) = &sub.too_large {
        e.set(
            "evidence",
            &format!("材料“{name}”超过2MB，请压缩后重新上传"),
        );
    } else if sub.too_many {
        e.set(
            "evidence",
            &format!("佐证材料最多{MAX_EVIDENCE_FILES}个文件"),
        );
    }
    if e.any() {
        return render(&s, &u, kind.as_str(), v, e, None, had_files).await;
    }

    let req = NewTransfer {
        from_province: v.from_province.clone(),
        student_name: v.student_name.clone(),
        student_ref: v.student_ref.clone(),
        to_grade: v.to_grade.clone(),
        to_class_id: class_id,
        reason: v.reason.clone(),
    };
    match s.app.file_transfer(&u.user, &req, sub.files).await {
        Ok(d) => Ok(Redirect::to(&format!("/transfers/{}?done=filed", d.id)).into_response()),
        Err(err) => {
            let err = user_error(err);
            if err.code == ErrorCode::Internal {
                let layout = Layout::new(&s.app, &u, "转学申请", "").await;
                return Err(layout.fail(err));
            }
            let beside = err.field.is_some_and(|f| e.set(f, &err.message));
            let top = (!beside || shown_on_top(err.code)).then_some(err);
            render(&s, &u, kind.as_str(), v, e, top, had_files).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_keep_the_first_message_per_field() {
        let mut e = FieldErrors::default();
        assert!(!e.any());
        assert!(e.set("student_name", "一"));
        assert!(e.set("student_name", "二"));
        assert_eq!(e.student_name, "一");
        assert!(!e.set("nonsense", "x"));
        assert!(e.any());
    }

    #[test]
    fn lookup_refusals_also_show_on_top() {
        assert!(shown_on_top(ErrorCode::NameMismatch));
        assert!(shown_on_top(ErrorCode::TransferInProgress));
        assert!(!shown_on_top(ErrorCode::ValidationFailed));
    }
}
