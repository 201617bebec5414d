(function () {
  function key(row, col) {
    var cell = row.children[col];
    if (!cell) { return null; }
    if (col === 0) { return cell.textContent.trim().toLowerCase(); }
    return cell.dataset.v === undefined ? null : parseFloat(cell.dataset.v);
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.querySelectorAll('thead th');
    heads.forEach(function (th) {
      th.setAttribute('aria-sort', 'none');
      th.addEventListener('click', function () {
        var col = parseInt(th.dataset.col, 10);
        // first click: best first (the column's direction); next clicks flip
        var asc = th.classList.contains('asc') ? false : th.classList.contains('desc') ? true : th.dataset.dir === 'asc';
        heads.forEach(function (h) { h.classList.remove('asc', 'desc'); h.setAttribute('aria-sort', 'none'); });
        th.classList.add(asc ? 'asc' : 'desc');
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var ka = key(a, col), kb = key(b, col);
          if (ka === null || kb === null) { return (ka === null) - (kb === null); }  // no value: last
          if (ka < kb) { return asc ? -1 : 1; }
          if (ka > kb) { return asc ? 1 : -1; }
          return 0;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
(function () {
  // the quality plot's x axis: one figure per axis, the pressed button's shown
  document.querySelectorAll('.xswitch').forEach(function (bar) {
    var views = [];
    for (var el = bar.nextElementSibling; el && el.classList.contains('xview'); el = el.nextElementSibling) {
      views.push(el);
    }
    bar.querySelectorAll('button').forEach(function (b) {
      b.addEventListener('click', function () {
        bar.querySelectorAll('button').forEach(function (o) { o.setAttribute('aria-pressed', o === b ? 'true' : 'false'); });
        views.forEach(function (v) { v.hidden = v.dataset.x !== b.dataset.x; });
      });
    });
  });
})();
