// Live sensor values, broker figures and bridge health over MQTT over WebSockets, from
// the broker that serves this page (culex's http_dir on a `protocol websockets`
// listener).
"use strict";

(function () {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/mqtt`;
  document.getElementById("broker-url").textContent = url;
  const status = document.getElementById("status");
  const setStatus = (state) => {
    status.textContent = state;
    status.dataset.state = state;
  };

  const sys = {
    "$SYS/broker/version": "sys-version",
    "$SYS/broker/uptime": "sys-uptime",
    "$SYS/broker/clients/connected": "sys-clients-connected",
    "$SYS/broker/messages/received": "sys-messages-received",
    "$SYS/broker/messages/sent": "sys-messages-sent",
    "$SYS/broker/retained messages/count": "sys-retained",
  };

  const client = mqtt.connect(url, {
    protocolVersion: 5,
    clientId: "dashboard-" + Math.random().toString(16).slice(2, 10),
    reconnectPeriod: 2000,
  });
  client.on("connect", () => {
    setStatus("connected");
    const topics = ["sensors/#", "$SYS/broker/connection/#", ...Object.keys(sys)];
    client.subscribe(topics, { qos: 0 }, (err) => {
      status.dataset.subscribed = err ? "no" : "yes";
    });
  });
  client.on("reconnect", () => setStatus("connecting"));
  client.on("offline", () => setStatus("offline"));
  client.on("error", (e) => { setStatus("error"); console.error(e); });

  // One row per bridge, from culex's $SYS/broker/connection/NAME/... figures (the
  // .../state notification topic, named after the remote client id, is left out).
  const bridgeCells = {
    "connected": "state", "address": "address", "backlog/messages": "backlog",
    "backlog/bytes": "bytes", "backlog/oldest_age": "age", "dropped/full": "dropped",
    "reconnects": "reconnects", "last_error": "error",
  };
  const bridges = new Map();
  const bridgeBody = document.querySelector("#bridges tbody");
  function showBridge([name, ...rest], text) {
    const key = rest.join("/");
    const cls = bridgeCells[key];
    if (!name || !cls) return;
    let row = bridges.get(name);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.bridge = name;
      for (const c of ["name", ...new Set(Object.values(bridgeCells))]) {
        const cell = document.createElement("td");
        cell.className = c;
        row.appendChild(cell);
      }
      row.querySelector("td.name").textContent = name;
      const after = [...bridges.keys()].sort().find((b) => b > name);
      bridgeBody.insertBefore(row, after ? bridges.get(after) : null);
      bridges.set(name, row);
      document.getElementById("no-bridges").hidden = true;
    }
    const cell = row.querySelector(`td.${cls}`);
    if (key === "connected") {
      row.dataset.connected = text;
      cell.textContent = text === "1" ? "up" : "down";
    } else if (key === "backlog/oldest_age") {
      cell.textContent = `${text} s`;
    } else {
      cell.textContent = text;
    }
  }

  const rows = new Map();
  const tbody = document.querySelector("#sensors tbody");
  client.on("message", (topic, payload) => {
    const text = new TextDecoder().decode(payload);
    if (sys[topic]) {
      document.getElementById(sys[topic]).textContent = text;
      return;
    }
    if (topic.startsWith("$SYS/broker/connection/")) {
      showBridge(topic.split("/").slice(3), text);
      return;
    }
    let row = rows.get(topic);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.topic = topic;
      for (const cls of ["topic", "value", "time"]) {
        const cell = document.createElement("td");
        cell.className = cls;
        row.appendChild(cell);
      }
      row.cells[0].textContent = topic;
      // Keep the table sorted by topic.
      const after = [...rows.keys()].sort().find((t) => t > topic);
      tbody.insertBefore(row, after ? rows.get(after) : null);
      rows.set(topic, row);
      document.getElementById("no-sensors").hidden = true;
    }
    row.cells[1].textContent = text;
    row.cells[2].textContent = new Date().toLocaleTimeString();
  });
})();
