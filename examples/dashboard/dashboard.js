// Live sensor values and broker figures over MQTT over WebSockets, from the broker that
// serves this page (culex's http_dir on a `protocol websockets` listener).
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
    client.subscribe(["sensors/#", ...Object.keys(sys)], { qos: 0 }, (err) => {
      status.dataset.subscribed = err ? "no" : "yes";
    });
  });
  client.on("reconnect", () => setStatus("connecting"));
  client.on("offline", () => setStatus("offline"));
  client.on("error", (e) => { setStatus("error"); console.error(e); });

  const rows = new Map();
  const tbody = document.querySelector("#sensors tbody");
  client.on("message", (topic, payload) => {
    const text = new TextDecoder().decode(payload);
    if (sys[topic]) {
      document.getElementById(sys[topic]).textContent = text;
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
