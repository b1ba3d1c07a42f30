// The search page: text queries, image queries (file picker, drag and drop, paste), images/texts toggle, collection
// picker, and which model serves. Plain JavaScript against the service's JSON API.
'use strict';
const $ = (id) => document.getElementById(id);
let collections = [];

function target() { return document.querySelector('input[name=target]:checked').value; }

function showModel() {
  const c = collections.find((x) => x.name === $('collection').value);
  if (!c || !c.model) { $('model').textContent = c ? `${c.name}: no model yet` : 'no collection'; return; }
  const m = c.model;
  const recall = m.recall == null ? '' : ` · recall ${m.recall.toFixed(1)}`;
  const from = m.schedule ? `schedule ${m.schedule} · stage ${m.stage}${recall}` : m.checkpoint.split('/').pop();
  $('model').textContent = `${c.name}: ${c.count} images · ${m.arch} · ${from}`;
  if (c.report) {
    const a = document.createElement('a');
    a.href = c.report;
    a.id = 'report';
    a.textContent = 'training report';
    $('model').append(' · ', a);
  }
}

async function loadCollections() {
  const r = await fetch('/v1/collections');
  collections = (await r.json()).collections;
  const select = $('collection');
  const chosen = select.value;
  select.innerHTML = '';
  for (const c of collections) {
    const o = document.createElement('option');
    o.value = o.textContent = c.name;
    select.appendChild(o);
  }
  if (collections.some((c) => c.name === chosen)) select.value = chosen;
  showModel();
}

function status(text, error) {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

function render(answer) {
  const grid = $('results');
  grid.innerHTML = '';
  for (const r of answer.results) {
    const card = document.createElement('div');
    card.className = 'card';
    card.dataset.id = r.id;
    const img = document.createElement('img');
    img.src = r.image;
    img.alt = r.captions[0] || `image ${r.image_id}`;
    const meta = document.createElement('div');
    meta.className = 'meta';
    const score = document.createElement('div');
    score.className = 'score';
    score.textContent = `#${r.id} · ${r.score.toFixed(4)}`;
    const captions = document.createElement('div');
    captions.className = 'captions';
    captions.textContent = r.captions.join(' / ');
    meta.append(score, captions);
    card.append(img, meta);
    grid.appendChild(card);
  }
  status(`${answer.results.length} results in ${answer.took_ms} ms`);
}

async function answer(response) {
  const body = await response.json();
  if (!response.ok) { status(body.error || `HTTP ${response.status}`, true); return; }
  render(body);
}

async function searchText(event) {
  event.preventDefault();
  const text = $('text').value;
  if (!text.trim()) { status('请输入查询', true); return; }
  status('searching…');
  await answer(await fetch('/v1/search', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ collection: $('collection').value, text, target: target(), k: 24 }),
  }));
}

async function searchImage(file) {
  if (!file) return;
  status(`searching with ${file.name || 'the pasted image'}…`);
  const form = new FormData();
  form.append('file', file);
  form.append('collection', $('collection').value);
  form.append('k', '24');
  form.append('target', target());
  await answer(await fetch('/v1/search/upload', { method: 'POST', body: form }));
}

$('query').addEventListener('submit', searchText);
$('collection').addEventListener('change', showModel);
$('file').addEventListener('change', (e) => searchImage(e.target.files[0]));
const drop = $('drop');
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); searchImage(e.dataTransfer.files[0]); });
document.addEventListener('paste', (e) => {
  const item = [...e.clipboardData.items].find((i) => i.type.startsWith('image/'));
  if (item) searchImage(item.getAsFile());
});
loadCollections().catch((e) => status(`cannot list collections: ${e}`, true));
setInterval(() => loadCollections().catch(() => {}), 10000);
