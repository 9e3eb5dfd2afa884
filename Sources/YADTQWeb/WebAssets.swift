/// The style sheet and script every page loads from `/static/`. They are embedded so the
/// server is one binary that works offline: no CDN, no web fonts, no build step. The
/// script is a file, not inline, so the Content-Security-Policy can forbid inline script.
enum WebAssets {
    static let css = """
        :root {
          --bg: #f5f6f8; --card: #fff; --text: #1f2430; --muted: #6b7280; --line: #e3e6eb;
          --accent: #3b5bdb; --accent-soft: #e8edff;
          --queued: #64748b; --processing: #d97706; --success: #16a34a; --failed: #dc2626;
          --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace;
        }
        * { box-sizing: border-box; }
        body { margin: 0; background: var(--bg); color: var(--text);
          font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
        a { color: var(--accent); text-decoration: none; }
        a:hover { text-decoration: underline; }
        header.top { background: #1e2433; color: #fff; display: flex; align-items: center; gap: 28px;
          padding: 0 28px; height: 54px; }
        header.top .brand { color: #fff; font-weight: 700; letter-spacing: .04em; font-size: 18px; }
        header.top .brand span { color: #8da2fb; }
        header.top nav { display: flex; gap: 4px; flex: 1; }
        header.top nav a { color: #c9d1e3; padding: 6px 12px; border-radius: 6px; }
        header.top nav a:hover { background: #2c3447; text-decoration: none; }
        header.top nav a.active { background: #3b4560; color: #fff; }
        header.top form { margin: 0; }
        header.top .logout { background: transparent; color: #c9d1e3; border: 1px solid #4b5570; }
        main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
        h1 { font-size: 22px; margin: 0 0 16px; }
        h2 { font-size: 16px; margin: 0 0 12px; }
        footer { text-align: center; color: var(--muted); font-size: 12px; padding: 0 0 24px; }
        .card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 18px 20px;
          margin-bottom: 20px; overflow-x: auto; }
        .grid { display: grid; gap: 20px; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); }
        .stats { display: grid; gap: 14px; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr));
          margin-bottom: 20px; }
        .stat { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px;
          border-top: 3px solid var(--accent); color: var(--text); }
        .stat:hover { text-decoration: none; border-color: var(--accent); }
        .stat .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .06em; }
        .stat .value { font-size: 28px; font-weight: 650; }
        .stat.s-SCHEDULED { border-top-color: var(--muted, #888); } .stat.s-QUEUED { border-top-color: var(--queued); } .stat.s-PROCESSING { border-top-color: var(--processing); }
        .stat.s-SUCCESS { border-top-color: var(--success); } .stat.s-FAILED { border-top-color: var(--failed); } .stat.s-CANCELLED { border-top-color: var(--muted, #888); }
        table { width: 100%; border-collapse: collapse; font-size: 14px; }
        th { text-align: left; color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase;
          letter-spacing: .05em; border-bottom: 1px solid var(--line); padding: 8px 10px; }
        td { border-bottom: 1px solid var(--line); padding: 8px 10px; vertical-align: top; }
        tr:last-child td { border-bottom: 0; }
        td.mono, .mono, code, pre { font-family: var(--mono); font-size: 13px; }
        td.clip { max-width: 220px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
        td.small { white-space: nowrap; }
        pre { background: #f1f3f7; border-radius: 8px; padding: 10px 12px; margin: 0; white-space: pre-wrap;
          word-break: break-word; max-height: 420px; overflow: auto; }
        .badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px; font-weight: 650;
          letter-spacing: .03em; color: #fff; background: var(--queued); }
        .badge.s-PROCESSING, .badge.v-STUCK { background: var(--processing); }
        .badge.s-SUCCESS, .badge.v-ALIVE { background: var(--success); }
        .badge.s-FAILED, .badge.v-DEAD { background: var(--failed); } .badge.s-CANCELLED { background: #777; }
        .badge.s-DUPLICATE { background: var(--muted); } .badge.s-SCHEDULED { background: #5b6b8c; }
        .muted { color: var(--muted); }
        .small { font-size: 12px; }
        .chips { display: flex; flex-wrap: wrap; gap: 8px; margin-bottom: 14px; }
        .chip { border: 1px solid var(--line); background: var(--card); border-radius: 999px; padding: 4px 12px;
          color: var(--text); font-size: 13px; }
        .chip b { margin-left: 4px; }
        .chip.active { border-color: var(--accent); background: var(--accent-soft); color: var(--accent); }
        form.filters { display: flex; flex-wrap: wrap; gap: 10px; align-items: end; margin-bottom: 16px; }
        label { display: block; font-size: 12px; color: var(--muted); font-weight: 600; margin-bottom: 4px;
          text-transform: uppercase; letter-spacing: .05em; }
        input, select, textarea { font: inherit; border: 1px solid #cfd4dc; border-radius: 7px; padding: 7px 10px;
          background: #fff; color: var(--text); width: 100%; }
        textarea { font-family: var(--mono); font-size: 13px; min-height: 190px; resize: vertical; }
        input:focus, select:focus, textarea:focus { outline: 2px solid var(--accent-soft); border-color: var(--accent); }
        .field { margin-bottom: 14px; }
        form.filters .field { margin: 0; min-width: 160px; }
        button, .button { font: inherit; font-weight: 600; border: 0; border-radius: 7px; padding: 8px 16px;
          background: var(--accent); color: #fff; cursor: pointer; display: inline-block; }
        button:hover, .button:hover { filter: brightness(1.1); text-decoration: none; }
        button.secondary, .button.secondary { background: #e7eaf0; color: var(--text); }
        .help { color: var(--muted); font-size: 13px; margin: 4px 0 0; min-height: 1.5em; }
        .notice { border-radius: 8px; padding: 12px 14px; margin-bottom: 18px; border: 1px solid; }
        .notice.error { background: #fef2f2; border-color: #fecaca; color: #991b1b; }
        .notice.ok { background: #f0fdf4; border-color: #bbf7d0; color: #166534; }
        .notice ul { margin: 6px 0 0; padding-left: 20px; font-family: var(--mono); font-size: 13px; }
        .pager { display: flex; gap: 10px; align-items: center; margin-top: 14px; }
        dl.facts { display: grid; grid-template-columns: 170px 1fr; gap: 8px 16px; margin: 0; }
        dl.facts dt { color: var(--muted); font-size: 13px; }
        dl.facts dd { margin: 0; }
        progress { width: 240px; height: 10px; vertical-align: middle; accent-color: var(--accent); }
        form.filters .field.grow { flex: 1; }
        .timeline { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; font-size: 13px; }
        .timeline .step { background: #f1f3f7; border-radius: 8px; padding: 6px 10px; }
        .timeline .gap { color: var(--muted); }
        svg.chart { width: 100%; height: auto; display: block; }
        svg.chart .axis { stroke: var(--line); }
        svg.chart text { fill: var(--muted); font-size: 11px; font-family: inherit; }
        svg.chart .ok { fill: var(--success); } svg.chart .bad { fill: var(--failed); }
        svg.chart .lag { stroke: var(--accent); stroke-width: 2; }
        .legend { display: flex; gap: 16px; font-size: 13px; color: var(--muted); margin-top: 6px; }
        .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
        .legend i.ok-key { background: var(--success); } .legend i.bad-key { background: var(--failed); }
        .login { max-width: 380px; margin: 60px auto; }
        .empty { color: var(--muted); text-align: center; padding: 28px 0; }
        """

    static let script = """
        'use strict';
        // Live regions: every second, fetch this page's live part again and swap it in,
        // so statuses, counts and charts move without reloading the page. The server
        // answers requests marked X-YADTQ-Live with the region's HTML only, escaped as usual.
        (function () {
          var live = document.getElementById('live');
          if (!live) { return; }
          var last = null, busy = false;
          setInterval(function () {
            if (busy) { return; }
            busy = true;
            fetch(location.href, { headers: { 'X-YADTQ-Live': '1' }, credentials: 'same-origin', cache: 'no-store' })
              .then(function (response) {
                if (response.status === 401) { location.reload(); return null; }
                return response.ok ? response.text() : null;
              })
              .then(function (html) {
                if (html !== null && html !== last) { last = html; live.innerHTML = html; }
              })
              .catch(function () {})
              .then(function () { busy = false; });
          }, 1000);
        })();

        // Submit form: show what the chosen task type does and the arguments it takes.
        (function () {
          var select = document.getElementById('task-type');
          var help = document.getElementById('type-help');
          var args = document.getElementById('task-args');
          if (!select || !help) { return; }
          function show() {
            var option = select.options[select.selectedIndex];
            help.textContent = option ? (option.getAttribute('data-description') || '') : '';
            if (args && option) { args.placeholder = option.getAttribute('data-args') || 'arguments, e.g. 1 2'; }
          }
          select.addEventListener('change', show);
          show();
        })();
        """
}
