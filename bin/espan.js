#!/usr/bin/env node
import "../dist/espan.js";
