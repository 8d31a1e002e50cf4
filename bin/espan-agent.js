#!/usr/bin/env node
import "../dist/espan-agent.js";
