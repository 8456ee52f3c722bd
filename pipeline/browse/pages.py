"""The browser's HTML templates (Jinja, autoescaped: every text from the data, captions
written by strangers among it, is escaped). No build step, no inline scripts: the pages'
Content-Security-Policy allows only the app's own /static/browse.js."""

from __future__ import annotations

LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{% block title %}webimagetext browse{% endblock %}</title>
<link rel="stylesheet" href="/static/browse.css"></head>
<body>
<nav><a href="/">Overview</a> <a href="/rows">Facets</a>
<form action="/search" method="get" class="inline"><input id="q" name="q" placeholder="search by text"
 value="{{ q or '' }}" size="30"> <button id="search-button">Search</button></form>
<form action="/search" method="post" enctype="multipart/form-data" class="inline">
<input type="file" id="upload" name="image" accept="image/*"> <button id="upload-button">Search by image</button></form>
</nav>
<main>{% block body %}{% endblock %}</main>
<script src="/static/browse.js"></script>
</body></html>"""

OVERVIEW = """{% extends "layout.html" %}{% block body %}
<h1>Dataset overview</h1>
<p>{{ shards }} shards in <code>{{ folder }}</code>.
{% if index %}Index: {{ index.count }} samples, faiss {{ index.kind }} ({{ index.params.factory }}).
{% else %}No index: run <code>wit index</code> for search.{% endif %}</p>
{% if counts %}<table id="counts">{% for k, v in counts.items() %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>{% endif %}
{% if report %}<h2>Report</h2><iframe id="report" src="/report" sandbox title="report.html"></iframe>{% endif %}
{% endblock %}"""

RESULTS = """{% extends "layout.html" %}{% block body %}
<h1>{{ title }}</h1>
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
<div class="grid" id="results">{% for r in results %}
<figure class="result"><a href="{{ url_for('sample', shard=r.shard, key=r.key) }}">
<img src="{{ url_for('image', shard=r.shard, key=r.key) }}" alt="" loading="lazy"></a>
<figcaption><span class="caption">{{ r.caption }}</span><br><span class="score">{{ '%.3f' % r.score }}</span>
 <a href="{{ url_for('search', like=r.shard ~ '/' ~ r.key) }}">more like this</a></figcaption></figure>
{% endfor %}</div>{% endblock %}"""

ROWS = """{% extends "layout.html" %}{% block body %}
<h1>Every candidate row: {{ result.matching }} of {{ result.total }}</h1>
{% if selected %}<p id="selection">Selected: {% for name, value in selected.items() %}
<a class="chip" href="{{ without(name) }}">{{ labels.get(name, name) }} = {{ value }} ✕</a>{% endfor %}</p>{% endif %}
<div class="facets">{% for name, counter in result.counts.items() %}
<section class="facet" id="facet-{{ name }}"><h3>{{ labels.get(name, name) }}</h3><ul>
{% for value, n in top(counter) %}<li><a href="{{ with_(name, value) }}" data-facet="{{ name }}" data-value="{{ value }}">{{ value if value else '(kept)' }}{% if name == 'entry' and entry_names.get(value|int(-1)) %} {{ entry_names[value|int(-1)] }}{% endif %}</a> <span class="n">{{ n }}</span></li>{% endfor %}
</ul></section>{% endfor %}</div>
<table id="rows"><tr><th>shard</th><th>key</th><th>status</th><th>caption</th><th>CLIP</th></tr>
{% for r in result.rows %}<tr><td>{{ r.shard }}</td><td><a class="row-link" href="{{ url_for('sample', shard=r.shard, key=r.key) }}">{{ r.key }}</a></td>
<td>{{ r.status }}</td><td class="caption">{{ r.caption }}</td><td>{{ '%.3f' % r.clip_score if r.clip_score is not none else '' }}</td></tr>{% endfor %}</table>
<p>{% if offset > 0 %}<a href="{{ page(offset - limit) }}">previous</a>{% endif %}
{% if offset + limit < result.matching %}<a id="next" href="{{ page(offset + limit) }}">next</a>{% endif %}</p>
{% endblock %}"""

SAMPLE = """{% extends "layout.html" %}{% block body %}
<h1>Sample {{ row.key }} <small>(shard {{ shard }})</small></h1>
{% if has_image %}<img id="sample-image" src="{{ url_for('image', shard=shard, key=row.key) }}" alt="">
{% if indexed %}<p><a id="more-like-this" href="{{ url_for('search', like=shard ~ '/' ~ row.key) }}">more like this</a></p>{% endif %}
{% else %}<p>No image in the tar: this row was not kept ({{ row.status }}).</p>
{% if group %}<p>The kept copy's image:</p><img id="kept-image" src="{{ url_for('image', shard=group[0][0], key=group[0][1]) }}" alt="">{% endif %}{% endif %}
<h2>Texts</h2><ol id="texts">{% for t in row.texts or [row.caption] %}<li class="caption">{{ t }}</li>{% endfor %}</ol>
{% if row.text_filter_reasons %}<p>Texts dropped by the caption rules: {{ row.text_filter_reasons|join(', ') }}</p>{% endif %}
<h2>Status</h2><p id="status">{{ row.status }}{% if row.error_message %}: {{ row.error_message }}{% endif %}</p>
<h2>Matched entries</h2><ul id="entries">{% for e in row.matched_entry_ids or [] %}<li>{{ e }} {{ entry_names.get(e, '') }}
 <a href="{{ url_for('rows', entry=e) }}">rows</a></li>{% endfor %}</ul>
<h2>Near-duplicate group</h2>{% if group %}<p>Kept copy: {{ keeper }}</p><ul id="duplicates">{% for s, k, st in group %}
<li><a href="{{ url_for('sample', shard=s, key=k) }}">{{ s }}/{{ k }}</a> {{ 'kept' if st == 'success' else st }}</li>{% endfor %}</ul>
{% else %}<p id="duplicates">none</p>{% endif %}
<h2>Provenance and every field</h2><table id="fields">{% for name, value in fields %}
<tr><th>{{ name }}</th><td>{% if name in ('url', 'page_url') and safe_link(value) %}<a href="{{ value }}" rel="noreferrer noopener">{{ value }}</a>{% else %}{{ '' if value is none else value }}{% endif %}</td></tr>{% endfor %}</table>
{% endblock %}"""

TEMPLATES = {"layout.html": LAYOUT, "overview.html": OVERVIEW, "results.html": RESULTS,
             "rows.html": ROWS, "sample.html": SAMPLE}

CSS = """body{font-family:sans-serif;margin:0 1em}nav{padding:.5em 0;border-bottom:1px solid #ccc}
nav a{margin-right:1em}form.inline{display:inline-block;margin-left:1em}
.grid{display:flex;flex-wrap:wrap;gap:8px}.grid figure{width:180px;margin:0}
.grid img{width:180px;height:180px;object-fit:cover;background:#eee}figcaption{font-size:12px;overflow-wrap:anywhere}
.facets{display:flex;flex-wrap:wrap;gap:1em}.facet{min-width:180px}.facet ul{padding-left:1em;font-size:13px}
.n{color:#666}.chip{background:#eef;padding:2px 6px;margin-right:4px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
#sample-image,#kept-image{width:320px;max-width:100%;image-rendering:auto}iframe{width:100%;height:1200px;border:1px solid #ccc}
.error{color:#a00}"""

# the only script: marks the page loaded and names the picked file on the upload button
# (textContent: a file name is text, never markup)
JS = """document.documentElement.dataset.ready = "1";
const upload = document.getElementById("upload");
if (upload) upload.addEventListener("change", () => {
  const button = document.getElementById("upload-button");
  if (upload.files.length) button.textContent = "Search by image: " + upload.files[0].name;
});"""
