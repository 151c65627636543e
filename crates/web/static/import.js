// 批量导入: polls the import job's progress and reloads the page when the job has finished.
// Served as a static file (the Content-Security-Policy forbids inline scripts); without it the
// page still works through its refresh link.
(function () {
  var bar = document.getElementById('import-progress');
  if (!bar) return;
  var url = bar.getAttribute('data-url');
  var text = document.getElementById('import-progress-text');
  function tick() {
    fetch(url, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.json(); })
      .then(function (j) {
        if (j.total) { bar.max = j.total; bar.value = j.done; }
        if (text) {
          text.textContent = (j.phase === 'writing' ? '正在写入' : '正在校验') + '：' + j.done + ' / ' + (j.total || '?') + ' 行';
        }
        if (j.finished) { window.location.reload(); } else { setTimeout(tick, 1000); }
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  setTimeout(tick, 500);
})();
